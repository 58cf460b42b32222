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

/**
 * A chain is hot (refreshed in its windows) while its last recorded vend is at most this many
 * access-token lifetimes old. Two, not one: a vend then records itself only when the recorded
 * one is over a lifetime old ({@link needsHotMark}), so a steadily used chain writes its mark every
 * other generation instead of every one (each mark is a write of the whole, ~4 KB item: DynamoDB
 * bills by item size). The price: a chain nobody vends any more is refreshed once more before it
 * cools.
 */
export const HOT_LIFETIMES = 2;

/** Whether a vend recorded at `lastVendAtMs` keeps a chain hot at `atMs` (token lifetime `lifetimeMs`). */
export function hotAt(lastVendAtMs: number | undefined, atMs: number, lifetimeMs: number): boolean {
  return lastVendAtMs !== undefined && lastVendAtMs >= atMs - HOT_LIFETIMES * lifetimeMs;
}

/**
 * Whether a vend at `nowMs` must record itself: the recorded vend is over a lifetime old. Then
 * at any window, a vend within the lifetime before it has a recorded vend at most two lifetimes
 * before it: every chain vended during a token's life is hot at its window, as with a mark per vend.
 */
export function needsHotMark(lastVendAtMs: number | undefined, nowMs: number, lifetimeMs: number): boolean {
  return lastVendAtMs === undefined || lastVendAtMs < nowMs - lifetimeMs;
}

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
