/**
 * What the broker asks of a login: log in as the Exact user and authorize the app, ending in an
 * authorization code (`response_type=code`) or an access token (`response_type=token`).
 *
 * Implementations are the only place that knows Exact's login pages; see
 * `one-exact-identity-driver.ts`. Failures are the `LoginError` subclasses of `login-errors.ts`.
 */
export interface LoginRequest {
  /** Exact instance (or the simulator), e.g. `https://start.exactonline.nl`. */
  readonly baseUrl: string;
  readonly clientId: string;
  /** As registered for the app; the driver stops at Exact's redirect to it and never requests it. */
  readonly redirectUri: string;
  readonly responseType: "code" | "token";
  readonly credentials: LoginCredentials;
  /**
   * The last TOTP step (floor(epochSeconds/30)) known to be used by a login as this user (e.g.
   * `TotpStepClaims.lastStep(username)`); the driver starts after it without claiming it. A hint:
   * `claimTotpStep` decides.
   */
  readonly lastTotpStep?: number;
  /**
   * Claims a TOTP step for this Exact user across all its connections (`TotpStepClaims.claim`).
   * Called with the step whose code is about to be sent, before the code is generated and before
   * the credentials are posted, and only for a step after `lastTotpStep`. True: the step is this
   * login's. False: another login of the same Exact user took that step (or a later one); the
   * driver waits for the next step and claims again, or fails with LoginUnavailable when its
   * budget cannot cover the wait. Exact refuses a step the user already logged in with, and each
   * refusal counts towards the lock. A throw fails the login with LoginUnavailable (step "totp",
   * the error as its cause) before anything is sent.
   */
  readonly claimTotpStep: (step: number) => Promise<boolean>;
  /** Budget for the whole login, including a wait for the next TOTP step (up to about 31 s). */
  readonly timeoutMs: number;
}

export interface LoginCredentials {
  readonly username: string;
  readonly password: string;
  /** Base32, as an authenticator app is given it; spaces, dashes and lower case are accepted. */
  readonly totpSecret: string;
}

/** `totpStep` is the step whose code this login used: store it with the chain as its `lastTotpStep`. */
export type LoginResult =
  | { readonly kind: "code"; readonly code: string; readonly totpStep: number }
  | {
      readonly kind: "token";
      readonly accessToken: string;
      readonly expiresInSeconds: number;
      readonly totpStep: number;
    };

export interface LoginDriver {
  login(request: LoginRequest): Promise<LoginResult>;
}
