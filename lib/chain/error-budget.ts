import type { ErrorBudget } from "./chain-record.js";

/**
 * Exact blocks an app for an hour after 10 errors per app, user and endpoint in an hour. We stop
 * at 8 token-endpoint errors per chain in any rolling hour, leaving room for a person's own
 * attempts (design invariant 7). A rolling hour is safe whether Exact counts per clock hour or
 * per sliding hour. Refused /api/v1/current/Me checks have a budget of their own with the same limit
 * (identity-check.ts).
 * Failed logins use the same rolling hour with a limit of their own (login-protocol.ts).
 */
export const TOKEN_ERRORS_PER_HOUR = 8;

const HOUR_MS = 3_600_000;
const MAX_BACKOFF_MS = 300_000;

const recent = (budget: ErrorBudget | undefined, nowMs: number): number[] =>
  (budget?.errorAtMs ?? []).filter((atMs) => atMs > nowMs - HOUR_MS);

/** The budget with one more error at `nowMs`; keeps only what `limit` needs. */
export function afterError(
  budget: ErrorBudget | undefined,
  nowMs: number,
  limit = TOKEN_ERRORS_PER_HOUR,
): ErrorBudget {
  return { errorAtMs: [...recent(budget, nowMs), nowMs].slice(-limit) };
}

export function errorsInLastHour(budget: ErrorBudget | undefined, nowMs: number): number {
  return recent(budget, nowMs).length;
}

/** Seconds until another error may be risked, or undefined when one may be risked now. */
export function budgetExhaustedFor(
  budget: ErrorBudget | undefined,
  nowMs: number,
  limit = TOKEN_ERRORS_PER_HOUR,
): number | undefined {
  const errors = recent(budget, nowMs);
  const oldest = errors[0];
  if (errors.length < limit || oldest === undefined) return undefined;
  return Math.max(1, Math.ceil((oldest + HOUR_MS - nowMs) / 1000));
}

/** Exponential backoff after repeated failures: 2 s, 4 s, 8 s … capped at 5 minutes, with jitter. */
export function backoffMs(failureStreak: number, random: () => number = Math.random): number {
  const base = Math.min(MAX_BACKOFF_MS, 2_000 * 2 ** Math.max(0, failureStreak - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}
