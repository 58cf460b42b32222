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
