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
  /** The TOTP step (floor(epochSeconds/30)) the last login of this chain used; never reused. */
  readonly lastTotpStep?: number;
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
