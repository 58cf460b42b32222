import { BrokerError } from "../../errors.js";

export interface LoginErrorOptions extends ErrorOptions {
  readonly retryAfterSeconds?: number;
  /** See {@link LoginError.totpStep}. */
  readonly totpStep?: number;
}

/**
 * Why a login failed, and where. Messages read `step "<step>": <problem>` and are built from
 * step names, field names, HTTP statuses, origins and Exact's error codes only: never a
 * password, TOTP secret or code, cookie, authorization code or token (design invariant 8).
 *
 * Each subclass pins its `name` as a literal, so it stays stable even if a bundler renames
 * classes; the `name` is what callers and events switch on.
 */
export abstract class LoginError extends BrokerError {
  /** The step of the flow that failed, e.g. `"b2c page"`, `"credentials"`. */
  readonly step: string;
  /**
   * The TOTP step (floor(epochSeconds/30)) whose code this login already sent to Exact, set when
   * the failure came after the code went out. Store it as the chain's last step even though the
   * login failed: Exact may have consumed that code, and a code is never used twice.
   */
  readonly totpStep: number | undefined;

  constructor(step: string, problem: string, options: LoginErrorOptions = {}) {
    super(`step "${step}": ${problem}`, options);
    this.step = step;
    this.totpStep = options.totpStep;
  }
}

/** Exact refused the user name or password (an unknown user gets the same answer). Not retryable. */
export class LoginBadCredentials extends LoginError {
  override readonly name = "LoginBadCredentials";
}

/**
 * Exact refused the verification code, or the stored TOTP secret cannot produce one (not
 * base32, too short). With a correct clock this means a wrong secret: not retryable.
 */
export class LoginBadTotp extends LoginError {
  override readonly name = "LoginBadTotp";
}

/** Exact locked the account after repeated failures (15 minutes on the simulator). Not retryable here. */
export class LoginLocked extends LoginError {
  override readonly name = "LoginLocked";
}

/**
 * A page or answer did not have what the driver expects: a missing form or field, an unexpected
 * status, a redirect to a host the password may not go to, a state mismatch. The message names
 * the step and what was missing, so a maintainer can adapt the driver when Exact changes a page.
 */
export class LoginPageNotUnderstood extends LoginError {
  override readonly name = "LoginPageNotUnderstood";
}

/** Exact could not be reached, answered 5xx or 429, or the login ran out of time. Retryable. */
export class LoginUnavailable extends LoginError {
  override readonly name = "LoginUnavailable";

  constructor(
    step: string,
    problem: string,
    options: LoginErrorOptions & { readonly retryAfterSeconds: number },
  ) {
    super(step, problem, options);
  }
}
