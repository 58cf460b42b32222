import { LOCK_MS, type LoginState, MAX_FAILURES_IN_A_ROW } from "./login-state.js";
import type { SimState, User } from "./state.js";
import { LoginOutcome } from "./stats.js";
import { totpStepOf } from "./totp.js";

export interface Credentials {
  signInName: string;
  password: string;
  totpCode: string;
}

export interface SignInResult {
  outcome: LoginOutcome;
  /** Only on success. */
  user: User | undefined;
}

/**
 * B2C's credential check, in this order, the first failing rule answers:
 *
 *   unknown user name ───────────► unknown_user (no lock: there is nobody to lock)
 *   user locked ─────────────────► locked (even with the right credentials; not a new failure)
 *   wrong password ──────────────► bad_password
 *   not the current step's code ─► bad_totp
 *   step already logged in with ─► totp_reused
 *   otherwise ───────────────────► success
 *
 * The three failures count toward the lock: the 5th in a row locks the user for 15 minutes of
 * sim time (that attempt still gets its own answer; the next ones get "locked"), and the streak
 * starts again at 0. A success resets the streak. The TOTP code is checked BEFORE the rules run,
 * so that the rules themselves run without an `await`: two concurrent posts of one code cannot
 * both pass the reuse rule.
 */
export async function signIn(
  state: SimState,
  login: LoginState,
  credentials: Credentials,
  nowMs: number,
): Promise<SignInResult> {
  const user = state.user(credentials.signInName);
  if (user === undefined) {
    return { outcome: LoginOutcome.unknownUser, user: undefined };
  }
  const step = await totpStepOf(user.totpSecret, credentials.totpCode, nowMs);
  const guard = login.guard(user);
  const fail = (outcome: LoginOutcome): SignInResult => {
    guard.failuresInARow += 1;
    if (guard.failuresInARow >= MAX_FAILURES_IN_A_ROW) {
      guard.failuresInARow = 0;
      guard.lockedUntilMs = nowMs + LOCK_MS;
    }
    return { outcome, user: undefined };
  };

  if (nowMs < guard.lockedUntilMs) {
    return { outcome: LoginOutcome.locked, user: undefined };
  }
  if (credentials.password !== user.password) {
    return fail(LoginOutcome.badPassword);
  }
  if (step === undefined) {
    return fail(LoginOutcome.badTotp);
  }
  if (step <= guard.lastTotpStep) {
    return fail(LoginOutcome.totpReused);
  }
  guard.failuresInARow = 0;
  guard.lastTotpStep = step;
  return { outcome: LoginOutcome.success, user };
}
