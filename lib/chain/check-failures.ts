import { type BrokerError, ExactUnavailable } from "../errors.js";
import { EventReason } from "../events/broker-events.js";
import type { ExactMe } from "../exact/oauth-client.js";
import type { EngineDeps } from "./engine-deps.js";
import { afterError, backoffMs } from "./error-budget.js";
import type { LeaseSession } from "./lease-session.js";
import { backedOff } from "./lease-transitions.js";
import { LOGIN_FAILURES_PER_HOUR } from "./login-budget.js";
import type { FreshAccess } from "./token-protocol.js";

/** The longest wait after a check that failed in a way Exact does not count (ms). */
const UNCOUNTED_RETRY_MS = 60_000;

export type VerifyOutcome =
  /** The chain is this connection's and ACTIVE. */
  | { readonly kind: "verified"; readonly fresh: FreshAccess; readonly identity: ExactMe }
  /** Another connection holds the chain's Exact user: the chain went there. */
  | { readonly kind: "handed_over"; readonly to: string; readonly identity: ExactMe }
  /** A login reached another Exact user than the connection's: REAUTH_REQUIRED. */
  | { readonly kind: "wrong_user"; readonly identity: ExactMe }
  /** A connection's first login reached a user that `owner` already holds: REAUTH_REQUIRED. */
  | { readonly kind: "duplicate"; readonly owner: string; readonly identity: ExactMe }
  | { readonly kind: "superseded" }
  /** The check could not be made; the chain stays VERIFYING (never served) until a later lease checks it. */
  | { readonly kind: "failed"; readonly error: BrokerError };

/**
 * An identity check (or a hand-over) that could not be finished now: the chain stays stored as
 * VERIFYING, due again when the backoff ends. `counts`: the failure was a 4xx from Exact, which
 * counts against Exact's error limit, so against the checks' own budget too (identity-check.ts).
 * `afterLogin`: the check followed a login in this invocation, which then counts as a failed
 * login (design invariant 7: a login whose result cannot be checked must not be repeated freely).
 */
export async function checkFailed(
  deps: Pick<EngineDeps, "now" | "random" | "log">,
  session: LeaseSession,
  error: BrokerError,
  options: { readonly afterLogin: boolean; readonly counts: boolean },
): Promise<VerifyOutcome> {
  const record = session.record;
  const nowMs = deps.now();
  const streak = (record.failureStreak ?? 0) + 1;
  // Failures Exact does not count (5xx, no answer) cost nothing there: check again within a
  // minute (a scheduled run), so a chain is served soon after /current/Me is back.
  const backoff = options.counts
    ? backoffMs(streak, deps.random)
    : Math.min(backoffMs(streak, deps.random), UNCOUNTED_RETRY_MS);
  const waitMs = Math.max(backoff, (error.retryAfterSeconds ?? 0) * 1000);
  const written = await session.finish(
    backedOff(
      { backoffUntilMs: nowMs + waitMs, backoffReason: "unavailable", failureStreak: streak },
      nowMs,
      {
        dueAtMs: nowMs + waitMs,
        ...(options.counts ? { identityChecks: afterError(record.identityChecks, nowMs) } : {}),
        ...(options.afterLogin
          ? {
              loginFailures: afterError(record.loginFailures, nowMs, LOGIN_FAILURES_PER_HOUR),
              lastLoginFailure: EventReason.LoginFailed,
            }
          : {}),
      },
    ),
  );
  if (!written) return { kind: "superseded" };
  deps.log.warn("identity check not finished; the chain stays stored as VERIFYING", {
    connectionId: record.connectionId,
    errorType: error.name,
  });
  return {
    kind: "failed",
    error: new ExactUnavailable(
      `connection "${record.connectionId}": the new chain is stored, but its identity check failed (${error.message}); it is retried automatically`,
      { retryAfterSeconds: Math.ceil(waitMs / 1000), cause: error },
    ),
  };
}
