import { accessValidityMs, type ChainRecord, ChainStatus } from "./chain-record.js";
import { budgetExhaustedFor } from "./error-budget.js";
import { EXPIRY_MARGIN_MS, MIN_CHECK_MS } from "./identity-check.js";

/**
 * What `/current/Me` said of a generation's access token after a consumer reported that Exact
 * refused it (token-vend's `rejectedGeneration`; rejected-token-check.ts makes the check).
 */
export const AccessCheckOutcome = {
  /** Me accepted it: the consumer's 401 had another cause, and the token is served again. */
  Accepted: "accepted",
  /** Me refused it (a 4xx): served to nobody any more; the generation's refresh replaces it. */
  Refused: "refused",
  /**
   * Me could not tell (5xx, no answer, a stored token that does not decrypt): not served to
   * consumers that report it refused, who wait for the generation's refresh; others still get it.
   */
  Unknown: "unknown",
} as const;
export type AccessCheckOutcome = (typeof AccessCheckOutcome)[keyof typeof AccessCheckOutcome];

/** The check of one generation's access token, recorded on the chain's item (`accessCheck`). */
export interface AccessCheck {
  readonly generation: number;
  readonly outcome: AccessCheckOutcome;
  /** When the outcome was recorded (epoch ms). */
  readonly checkedAtMs: number;
}

/** The check recorded for the item's current generation, if any (one of an older generation says nothing). */
export function currentCheck(record: ChainRecord): AccessCheck | undefined {
  return record.accessCheck?.generation === record.generation ? record.accessCheck : undefined;
}

/**
 * Whether a vend may answer the item's current access token: never once `/current/Me` refused it;
 * to a vend that reports its generation refused (`rejectedGeneration`), only once Me accepted it.
 */
export function servesCurrent(record: ChainRecord, rejectedGeneration: number | undefined): boolean {
  const outcome = currentCheck(record)?.outcome;
  if (outcome === AccessCheckOutcome.Refused) return false;
  return rejectedGeneration !== record.generation || outcome === AccessCheckOutcome.Accepted;
}

/**
 * Whether a vend reporting `rejectedGeneration` refused should have the token checked with
 * `/current/Me` now, rather than wait for the generation's refresh: it is the current generation,
 * not checked yet, of a chain that serves it (ACTIVE or SUSPECT, no hand-over, no note of a holder
 * that vanished: the refresh that follows settles that), and it could be served if Me accepts it
 * (the validity asked for, and enough for the call itself). Not when the checks' budget is spent
 * (8 refusals an hour, error-budget.ts; Exact blocks at 10): the refresh then replaces the token.
 */
export function checkDue(
  record: ChainRecord,
  rejectedGeneration: number | undefined,
  needMs: number,
  nowMs: number,
): boolean {
  return (
    rejectedGeneration === record.generation &&
    currentCheck(record) === undefined &&
    (record.status === ChainStatus.Active || record.status === ChainStatus.Suspect) &&
    record.handOver === undefined &&
    record.inflight === undefined &&
    accessValidityMs(record, nowMs) >= Math.max(needMs, MIN_CHECK_MS + EXPIRY_MARGIN_MS) &&
    budgetExhaustedFor(record.identityChecks, nowMs) === undefined
  );
}
