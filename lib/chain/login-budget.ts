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
  // A code login ends in a code exchange at the token endpoint, whose errors Exact counts with the
  // chain's refreshes (per app, user and endpoint): no login whose exchange the budget cannot
  // afford (design invariant 7).
  const exchangeWaitMs =
    record.mode === ConnectionMode.Code ? (budgetExhaustedFor(record.tokenErrors, nowMs) ?? 0) * 1000 : 0;
  // A broken chain's backoff is its login's, and so is a blocked user's without a chain (its
  // re-check is a login); an implicit chain's every token comes from a login.
  const loginBackoff =
    record.status === ChainStatus.Broken ||
    record.status === ChainStatus.Blocked ||
    record.mode === ConnectionMode.Implicit;
  const backoffWaitMs = loginBackoff ? (record.backoffUntilMs ?? 0) - nowMs : 0;
  const waitMs = Math.max(budgetWaitMs, exchangeWaitMs, backoffWaitMs);
  return waitMs > 0 ? Math.ceil(waitMs / 1000) : undefined;
}

/**
 * The status a chain keeps when its login is held back, or fails in a way that may pass: a
 * blocked user's connection stays BLOCKED (vends go on answering UserBlocked), an implicit chain
 * keeps its own (its token may still be valid), any other is BROKEN (its heal is tried again).
 */
export function restingStatus(record: Pick<ChainRecord, "status" | "mode">): ChainStatus {
  if (record.status === ChainStatus.Blocked) return ChainStatus.Blocked;
  if (record.mode === ConnectionMode.Implicit && record.status !== ChainStatus.Broken) return record.status;
  return ChainStatus.Broken;
}
