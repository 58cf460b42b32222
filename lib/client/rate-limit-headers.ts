import type { RateLimitObservation } from "./rate-budget.js";

/*
 * Exact's API rate-limit headers (shared/exact-online.md, "Limits that punish clumsy clients";
 * what the simulator sends: lib/sim/api-rate-limit.ts). Resets are epoch milliseconds. When the
 * minute's budget is gone Exact sends only the minutely headers.
 */

/** When a 429 names no reset: Exact's shorter window is a minute. */
export const DEFAULT_THROTTLE_SECONDS = 60;

/** A non-negative whole number, or undefined for a header that is absent or malformed. */
function count(headers: Headers, name: string): number | undefined {
  const value = headers.get(name)?.trim();
  return value !== undefined && /^\d{1,16}$/.test(value) ? Number(value) : undefined;
}

/** The `X-RateLimit-*` headers of one answer of Exact's REST API; absent or malformed ones are left out. */
export function parseRateLimitHeaders(headers: Headers, status: number): RateLimitObservation {
  const observation: {
    -readonly [K in keyof RateLimitObservation]: RateLimitObservation[K];
  } = { rateLimited: status === 429 };
  const fields = [
    ["minutelyRemaining", "X-RateLimit-Minutely-Remaining"],
    ["minutelyResetAtMs", "X-RateLimit-Minutely-Reset"],
    ["dailyRemaining", "X-RateLimit-Remaining"],
    ["dailyResetAtMs", "X-RateLimit-Reset"],
  ] as const;
  for (const [field, header] of fields) {
    const value = count(headers, header);
    if (value !== undefined) observation[field] = value;
  }
  return observation;
}

/**
 * Whole seconds (at least 1) until the budget that refused a 429 is back: the day's when it is
 * spent, else the minute's, else `DEFAULT_THROTTLE_SECONDS`. Counted on `nowMs`, this process's
 * clock, against Exact's resets: a clock behind Exact's waits that much longer, one ahead that
 * much shorter (at least 1 s; an early retry meets another 429 with a new reset).
 */
export function throttledForSeconds(observation: RateLimitObservation, nowMs: number): number {
  const resetAtMs =
    observation.dailyRemaining === 0 && observation.dailyResetAtMs !== undefined
      ? observation.dailyResetAtMs
      : observation.minutelyResetAtMs;
  if (resetAtMs === undefined) return DEFAULT_THROTTLE_SECONDS;
  return Math.max(1, Math.ceil((resetAtMs - nowMs) / 1000));
}
