import type { RateLimitObservation } from "../client/rate-budget.js";

/**
 * Exact's API rate-limit windows as the shared budget counts them, and the decision of one claim.
 *
 * Exact counts REST calls per (app, division) in fixed windows, the clock minute and the UTC day
 * (its "API limits" documentation; lib/sim/api-rate-limit.ts reads it the same way). The budget
 * hands out `slotsPerMinute` (58 of Exact's 60) slots a minute, each tied to one point of a grid
 * that runs evenly through every minute:
 *
 *   minute m                                        minute m+1
 *   |s0     s1     s2    …    s57    |s0     s1    …
 *   0 s    1.034  2.069      58.97   60 s   61.03
 *
 * Slot i of minute m may be used from `m·60 s + i·60 s/58` until `lateMs` (half a spacing, 517 ms)
 * later; a slot nobody took by then is skipped, not banked. So a minute's calls are never burst at
 * a window's edge: while each call reaches Exact within one spacing (1.034 s) of its grid point,
 * any 60 s stretch, however Exact's windows lie against ours, holds calls of at most 59 grid
 * points (an open stretch of 60 s + one spacing is 59 spacings long), and a window aligned with
 * ours at most 58. The margin of 2 is that room: one call for a misaligned window, two for an
 * aligned one, for calls later than a spacing (clock skew between our processes and Exact,
 * scheduling, the network). 59 a minute would leave none (its spacing, 1.017 s, puts 60 grid
 * points in such a stretch).
 *
 * The day keeps 10 calls back (4,990 of 5,000): calls sent at 23:59:59 may be charged to the next
 * day, and what Exact reports of callers outside the broker lags by the calls in flight.
 */

/** Exact's limits per (app, division) and what the budget keeps back from them. */
export interface RateLimits {
  /** Exact's calls per clock minute. @default 60 */
  readonly callsPerMinute: number;
  /** Exact's calls per UTC day. @default 5000 */
  readonly callsPerDay: number;
  /** Minute slots never handed out (see above). @default 2 */
  readonly minuteMargin: number;
  /** Day calls never handed out (see above). @default 10 */
  readonly dayMargin: number;
}

/** Exact's published limits: 60 calls a minute and 5,000 a day per app and division. */
export const EXACT_RATE_LIMITS: RateLimits = {
  callsPerMinute: 60,
  callsPerDay: 5000,
  minuteMargin: 2,
  dayMargin: 10,
};

export const MINUTE_MS = 60_000;
export const DAY_MS = 24 * 60 * MINUTE_MS;

/** One (app, division, UTC day) budget item as last seen; absent attributes are undefined. */
export interface BudgetState {
  /** Epoch minute (`floor(ms / 60000)`) that `next` counts in. */
  readonly minute?: number;
  /** First slot index of `minute` not yet handed out (skipped slots included). */
  readonly next?: number;
  /** Calls handed out this day. */
  readonly dayCalls?: number;
  /** Outside calls (Exact's count over our grid) the minute's last raise from `observe` made room for. */
  readonly excessSeen?: number;
}

/**
 * What one claim should write, or why it writes nothing:
 * - `advance`: take `k` slots from the item's `next`, which must lie in `[floor, maxFirst]`;
 * - `restart`: the item is of an earlier minute, or its `next` fell behind the grid: take `k`
 *   slots from `first` (the earliest slot not yet late), skipping the ones before it;
 * - `wait`: no slot before `untilMs` (the minute's budget is spent, or the first free slot lies
 *   past the deadline, or another process's clock is in a later minute);
 * - `daySpent`: the day's budget is spent until `untilMs` (UTC midnight, when Exact resets it).
 */
export type Plan =
  | {
      readonly kind: "advance";
      readonly minute: number;
      readonly floor: number;
      readonly maxFirst: number;
      readonly k: number;
    }
  | { readonly kind: "restart"; readonly minute: number; readonly first: number; readonly k: number }
  | { readonly kind: "wait"; readonly untilMs: number }
  | { readonly kind: "daySpent"; readonly untilMs: number };

/** The grid, the windows and the claim decision for one set of limits. Pure: time comes in. */
export class RateWindows {
  /** Slots handed out per minute. */
  readonly slotsPerMinute: number;
  /** Calls handed out per day. */
  readonly dayCap: number;
  /** Between two grid points (60 s / slotsPerMinute). */
  readonly spacingMs: number;
  /** How long after its grid point a slot may still be used: half a spacing. */
  readonly lateMs: number;

  constructor(readonly limits: RateLimits) {
    this.slotsPerMinute = limits.callsPerMinute - limits.minuteMargin;
    this.dayCap = limits.callsPerDay - limits.dayMargin;
    if (!(this.slotsPerMinute >= 1 && this.dayCap >= 1)) {
      throw new RangeError("rate limits leave no calls after their margins");
    }
    this.spacingMs = MINUTE_MS / this.slotsPerMinute;
    this.lateMs = this.spacingMs / 2;
  }

  minuteOf(ms: number): number {
    return Math.floor(ms / MINUTE_MS);
  }

  dayOf(ms: number): number {
    return Math.floor(ms / DAY_MS);
  }

  /** UTC midnight after `ms`: when Exact gives the day's budget back. */
  dayEndMs(ms: number): number {
    return (this.dayOf(ms) + 1) * DAY_MS;
  }

  /** Grid point of slot `index` of `minute`, epoch ms rounded up (a slot is never early). */
  slotAtMs(minute: number, index: number): number {
    return minute * MINUTE_MS + Math.ceil((index * MINUTE_MS) / this.slotsPerMinute);
  }

  /** Index of the first slot of `nowMs`'s minute that is not late yet. */
  floorIndex(nowMs: number): number {
    const sinceMinuteMs = nowMs - this.minuteOf(nowMs) * MINUTE_MS;
    return Math.max(0, Math.ceil(((sinceMinuteMs - this.lateMs) * this.slotsPerMinute) / MINUTE_MS));
  }

  /** Grid points in `[fromMs, toMs]`, across minutes (the grid is uniform). */
  gridCount(fromMs: number, toMs: number): number {
    const perMs = this.slotsPerMinute / MINUTE_MS;
    return Math.max(0, Math.floor(toMs * perMs) - Math.ceil(fromMs * perMs) + 1);
  }

  /**
   * The claim of up to `want` slots, none after `deadlineMs`, given the item as last seen.
   * `giveBack` is the number of this day's slots the process reserved and dropped unused: the
   * claim returns them to the day's count, so they no longer count against the day.
   */
  plan(state: BudgetState, nowMs: number, want: number, deadlineMs: number, giveBack = 0): Plan {
    const dayCalls = (state.dayCalls ?? 0) - giveBack;
    if (dayCalls >= this.dayCap) return { kind: "daySpent", untilMs: this.dayEndMs(nowMs) };
    const minute = this.minuteOf(nowMs);
    if (state.minute !== undefined && state.minute > minute) {
      return { kind: "wait", untilMs: state.minute * MINUTE_MS };
    }
    const floor = this.floorIndex(nowMs);
    const advance = state.minute === minute && (state.next ?? 0) >= floor;
    const first = advance ? (state.next ?? 0) : floor;
    if (first >= this.slotsPerMinute) return { kind: "wait", untilMs: (minute + 1) * MINUTE_MS };
    const lastByDeadline = this.lastIndexBy(minute, deadlineMs);
    if (first > lastByDeadline) return { kind: "wait", untilMs: this.slotAtMs(minute, first) };
    const k = Math.min(want, this.dayCap - dayCalls, this.slotsPerMinute - first, lastByDeadline - first + 1);
    if (!advance) return { kind: "restart", minute, first, k };
    return {
      kind: "advance",
      minute,
      floor,
      maxFirst: Math.min(this.slotsPerMinute, lastByDeadline + 1) - k,
      k,
    };
  }

  /** Grid points of `nowMs`'s minute up to it: the most calls of ours Exact can have counted in it. */
  gridSoFar(nowMs: number): number {
    return this.gridCount(this.minuteOf(nowMs) * MINUTE_MS, nowMs);
  }

  /** Slots of `nowMs`'s minute handed out for grid points still to come: calls Exact has not seen yet. */
  pending(state: BudgetState, nowMs: number): number {
    if (state.minute !== this.minuteOf(nowMs)) return 0;
    return Math.max(0, (state.next ?? 0) - this.gridSoFar(nowMs));
  }

  /**
   * Exact's minute window as its answer at `nowMs` describes it: the calls it still takes and when
   * the window ends; undefined without minutely headers or for a window already over. A 429
   * without headers counts as a spent minute.
   */
  exactMinute(
    observation: RateLimitObservation,
    nowMs: number,
  ): { readonly remaining: number; readonly startMs: number; readonly endMs: number } | undefined {
    const { minutelyRemaining, minutelyResetAtMs, rateLimited, dailyRemaining } = observation;
    const remaining = minutelyRemaining ?? (rateLimited && dailyRemaining === undefined ? 0 : undefined);
    const endMs = minutelyResetAtMs ?? (this.minuteOf(nowMs) + 1) * MINUTE_MS;
    if (remaining === undefined || endMs <= nowMs) return undefined;
    return { remaining, startMs: Math.min(nowMs, endMs - MINUTE_MS), endMs };
  }

  /**
   * Calls in Exact's minute window beyond the grid points ours could have used in it, so made by
   * others; undefined when there are none.
   */
  minuteExcess(observation: RateLimitObservation, nowMs: number): number | undefined {
    const window = this.exactMinute(observation, nowMs);
    if (window === undefined) return undefined;
    // A call may reach Exact up to lateMs after its grid point: those of the point before count too.
    const ours = this.gridCount(window.startMs - this.lateMs, nowMs);
    const excess = this.limits.callsPerMinute - window.remaining - ours;
    return excess > 0 ? excess : undefined;
  }

  /** The `n`-th grid point after `nowMs` (n ≥ 1), epoch ms. */
  pointAfter(nowMs: number, n: number): number {
    const index = Math.floor((nowMs * this.slotsPerMinute) / MINUTE_MS) + n;
    return Math.ceil((index * MINUTE_MS) / this.slotsPerMinute);
  }

  /** Exact's count of the day so far, when the answer speaks of our UTC day. */
  exactDayCount(observation: RateLimitObservation, nowMs: number): number | undefined {
    const { dailyRemaining, dailyResetAtMs } = observation;
    if (dailyRemaining === undefined) return undefined;
    if (dailyResetAtMs !== undefined && Math.abs(dailyResetAtMs - this.dayEndMs(nowMs)) > MINUTE_MS) {
      return undefined;
    }
    return this.limits.callsPerDay - dailyRemaining;
  }

  /** The last slot of `minute` whose grid point is at or before `deadlineMs` (−1: none). */
  private lastIndexBy(minute: number, deadlineMs: number): number {
    const sinceMinuteMs = deadlineMs - minute * MINUTE_MS;
    const index = Math.floor((sinceMinuteMs * this.slotsPerMinute) / MINUTE_MS);
    // slotAtMs rounds up: the index whose rounded point passes the deadline is one too many.
    const fits = index >= 0 && this.slotAtMs(minute, index) <= deadlineMs ? index : index - 1;
    return Math.min(this.slotsPerMinute - 1, fits);
  }
}
