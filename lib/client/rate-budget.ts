/**
 * The seam between `exactFetch` and whatever shares Exact's API rate limits among consumers.
 *
 * Exact limits REST calls per app and per division: 60 a minute and 5,000 a day, with
 * `X-RateLimit-*` headers on each answer and 429 past a limit (Exact's "API limits"
 * documentation; lib/sim/api-rate-limit.ts is what the simulator enforces). Every consumer of one
 * (app, division) draws from the same two budgets, so they must be counted together.
 */

/** Which budget a call draws from: Exact counts per app (client ID) and division. */
export interface RateKey {
  /** The Exact app's client ID (the vend answer's `clientId`). */
  readonly clientId: string;
  /** The Exact division the call is for. */
  readonly division: number;
}

/** Exact's `X-RateLimit-*` headers of one answer, parsed; absent headers are undefined. */
export interface RateLimitObservation {
  /** `X-RateLimit-Minutely-Remaining`. */
  readonly minutelyRemaining?: number;
  /** `X-RateLimit-Minutely-Reset`: epoch ms when the minute's budget is back. */
  readonly minutelyResetAtMs?: number;
  /** `X-RateLimit-Remaining`: calls left today. */
  readonly dailyRemaining?: number;
  /** `X-RateLimit-Reset`: epoch ms when the day's budget is back. */
  readonly dailyResetAtMs?: number;
  /** The answer was a 429. */
  readonly rateLimited: boolean;
}

/**
 * Shared among every consumer of one (app, division). `exactFetch` calls `acquire` before each
 * call to Exact's REST API and `observe` with each answer's headers.
 */
export interface RateBudget {
  /**
   * Waits until one call of `key` fits both budgets, never past `deadlineMs` (epoch ms).
   * @throws Throttled (with `retryAfterSeconds`) when the day's budget is spent, or when the wait
   *   for the minute's budget would pass the deadline: never an unbounded queue.
   */
  acquire(key: RateKey, deadlineMs: number): Promise<void>;
  /** Feeds what Exact said about the budgets back, so every consumer paces on Exact's own count. */
  observe(key: RateKey, observation: RateLimitObservation): Promise<void>;
}
