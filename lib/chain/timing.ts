import type { BrokerConfig } from "../config.js";

/**
 * First moment Exact accepts a refresh: it refuses one until `expires_in − window` seconds after
 * it issued the token. We count from when the answer ARRIVED (later than Exact's issue time)
 * and add a margin, so clock skew and latency can only make us late, never too early.
 */
export function windowOpensAtMs(
  arrivalMs: number,
  expiresInSeconds: number,
  config: Pick<BrokerConfig, "refreshWindowSeconds" | "refreshMarginMs">,
): number {
  return arrivalMs + (expiresInSeconds - config.refreshWindowSeconds) * 1000 + config.refreshMarginMs;
}

const DAY_MS = 86_400_000;

/** When an idle chain's refresh token must be used again so it never reaches Exact's 30 days. */
export function keepaliveDueAtMs(refreshIssuedAtMs: number, keepaliveDays: number): number {
  return refreshIssuedAtMs + keepaliveDays * DAY_MS;
}

/**
 * The largest difference between this process's clock and DynamoDB's that the lease protocol
 * tolerates (design invariant 1 under skew). A lease is judged expired only this long after its
 * `leaseUntilMs`, and its holder stops starting work this long before it, so two processes
 * whose clocks are each within the bound can never both believe they hold the lease. A process
 * whose measured offset may exceed it takes no lease at all (clock-skew.ts). DynamoDB's `Date`
 * header has one-second resolution, so the bound must be at least 2 s.
 */
export const CLOCK_SKEW_BOUND_MS = 3_000;
