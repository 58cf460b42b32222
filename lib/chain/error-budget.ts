import type { ErrorBudget } from "./chain-record.js";

/**
 * Exact blocks an app for an hour after 10 errors per app, user and endpoint in an hour. We stop
 * at 8 token-endpoint errors per chain, leaving room for a person's own attempts (design
 * invariant 7). /api/v1/current/Me is called only when a chain starts, so it needs no budget.
 */
export const TOKEN_ERRORS_PER_HOUR = 8;

const HOUR_MS = 3_600_000;
const MAX_BACKOFF_MS = 300_000;

const hourStart = (nowMs: number): number => Math.floor(nowMs / HOUR_MS) * HOUR_MS;

export function afterError(budget: ErrorBudget | undefined, nowMs: number): ErrorBudget {
  const start = hourStart(nowMs);
  return { hourStartMs: start, count: budget?.hourStartMs === start ? budget.count + 1 : 1 };
}

/** Seconds until the budget refills, or undefined when another error may still be risked. */
export function budgetExhaustedFor(budget: ErrorBudget | undefined, nowMs: number): number | undefined {
  if (!budget || budget.hourStartMs !== hourStart(nowMs) || budget.count < TOKEN_ERRORS_PER_HOUR)
    return undefined;
  return Math.ceil((budget.hourStartMs + HOUR_MS - nowMs) / 1000);
}

/** Exponential backoff after repeated failures: 2 s, 4 s, 8 s … capped at 5 minutes, with jitter. */
export function backoffMs(failureStreak: number, random: () => number = Math.random): number {
  const base = Math.min(MAX_BACKOFF_MS, 2_000 * 2 ** Math.max(0, failureStreak - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}
