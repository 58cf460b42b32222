import type { RateKey } from "../client/rate-budget.js";
import { Throttled } from "../errors.js";

/** The day's budget of `key` is spent until `untilMs` (the reset Exact reported, else UTC midnight). */
export function daySpent(key: RateKey, callsPerDay: number, nowMs: number, untilMs: number): Throttled {
  return new Throttled(
    `Exact's API budget of ${callsPerDay} calls a day for division ${key.division} (app ${key.clientId}) ` +
      `is spent until ${new Date(untilMs).toISOString()}`,
    { retryAfterSeconds: retryAfterSeconds(nowMs, untilMs) },
  );
}

/** No slot of `key` is free before the caller's deadline; the next one is at `freeAtMs`. */
export function noSlotBeforeDeadline(
  key: RateKey,
  slotsPerMinute: number,
  nowMs: number,
  freeAtMs: number,
): Throttled {
  return new Throttled(
    `no call to Exact's API for division ${key.division} (app ${key.clientId}) fits before the deadline: ` +
      `the shared rate budget (${slotsPerMinute} a minute) has its next slot in ` +
      `${((freeAtMs - nowMs) / 1000).toFixed(1)} s`,
    { retryAfterSeconds: retryAfterSeconds(nowMs, freeAtMs) },
  );
}

/** Whole seconds until `untilMs`, at least 1: a retry sooner would be refused again. */
function retryAfterSeconds(nowMs: number, untilMs: number): number {
  return Math.max(1, Math.ceil((untilMs - nowMs) / 1000));
}
