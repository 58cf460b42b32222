import { type ChainRecord, ChainStatus, ConnectionMode } from "./chain-record.js";
import { budgetExhaustedFor } from "./error-budget.js";

/**
 * Failed logins risked per chain in any rolling hour. Exact locks an account after about five
 * failures in a row (shared/exact-online.md), so three leave a person room for their own.
 */
export const LOGIN_FAILURES_PER_HOUR = 3;

/** Seconds until another login may be risked, or undefined when one may be risked now. */
export function loginBlockedFor(record: ChainRecord, nowMs: number): number | undefined {
  const budgetWaitMs = (budgetExhaustedFor(record.loginFailures, nowMs, LOGIN_FAILURES_PER_HOUR) ?? 0) * 1000;
  // A broken chain's backoff is its login's; an implicit chain's every token comes from a login.
  const loginBackoff = record.status === ChainStatus.Broken || record.mode === ConnectionMode.Implicit;
  const backoffWaitMs = loginBackoff ? (record.backoffUntilMs ?? 0) - nowMs : 0;
  const waitMs = Math.max(budgetWaitMs, backoffWaitMs);
  return waitMs > 0 ? Math.ceil(waitMs / 1000) : undefined;
}
