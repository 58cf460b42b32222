import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { RateBudget, RateKey, RateLimitObservation } from "../client/rate-budget.js";
import { daySpent, noSlotBeforeDeadline } from "./budget-refusals.js";
import { BudgetTable } from "./budget-table.js";
import {
  type BudgetState,
  DAY_MS,
  EXACT_RATE_LIMITS,
  MINUTE_MS,
  type RateLimits,
  RateWindows,
} from "./rate-windows.js";

export interface SharedRateBudgetOptions {
  /** The budget's own table (budget-table.ts), never the chain table. */
  readonly tableName: string;
  /** @default one `new DynamoDBClient({})` for the process, created on first use */
  readonly client?: DynamoDBClient;
  /** Epoch ms. @default Date.now */
  readonly now?: () => number;
  /** @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** @default EXACT_RATE_LIMITS (60 a minute, 5,000 a day; 2 and 10 kept back) */
  readonly limits?: Partial<RateLimits>;
  /**
   * Most slots one claim reserves for this process: as many as it had callers in `acquire` at once
   * in the last minute, or one more than the acquires in a row that came back within a spacing of
   * their last slot (a paging loop), up to this. @default 5
   */
  readonly maxBlock?: number;
}

export const DEFAULT_MAX_BLOCK = 5;
/** Conditional writes one claim tries before its waiters plan again (others keep taking slots). */
const CLAIM_ATTEMPTS = 4;

let sharedClient: DynamoDBClient | undefined;

/** Created once per process, so a warm Lambda container reuses its connections. */
function processClient(): DynamoDBClient {
  sharedClient ??= new DynamoDBClient({});
  return sharedClient;
}

interface Slot {
  readonly atMs: number;
  readonly day: number;
  /** Exact has no room for it any more (trimSlots): its waiter asks again. */
  revoked?: boolean;
}

/** This process's view of one (app, division): the item as last seen, and the slots it holds. */
interface Lane {
  readonly key: RateKey;
  /** The epoch day `state` and `giveBack` belong to. */
  day: number;
  state: BudgetState;
  /** Reserved and not yet given to a caller, earliest first. */
  slots: Slot[];
  /** Given to a caller that waits for its grid point. */
  readonly held: Set<Slot>;
  /** Slots of `day` dropped unused: the next claim returns them to the day's count. */
  giveBack: number;
  /**
   * Epoch ms until which Exact said the day's budget is spent (`X-RateLimit-Remaining: 0`), at
   * the reset it reported: Exact's day need not be our UTC day.
   */
  daySpentUntilMs: number;
  /** Callers waiting for a slot, by deadline (epoch ms). */
  readonly needs: Set<{ readonly deadlineMs: number }>;
  /** Callers inside `acquire`, and the most of them at once within the last minute. */
  active: number;
  peak: number;
  peakAtMs: number;
  /** The latest grid point handed to a caller, and how many acquires in a row came within a spacing of it. */
  lastGrantAtMs: number;
  streak: number;
  claim: Promise<void> | undefined;
}

/**
 * Exact's API rate limits shared by every consumer of one (app, division), through one DynamoDB
 * item per (app, division, UTC day) (budget-table.ts) and a grid of paced slots (rate-windows.ts).
 *
 * Cost: slots are taken by one conditional UpdateItem, which reserves up to `maxBlock` of them for
 * this process: 1 write per call for a process with one occasional caller; 1/k for k callers at
 * once or a paging loop (k ≤ 5). A write that loses its condition (another process moved the
 * item) is retried on the item DynamoDB returns with the failure (dynalite returns none: one
 * GetItem). `observe` costs nothing unless Exact counted calls ours do not explain: then 1 read
 * and 1 or 2 writes. A day's spent budget is known locally after the first refusal: no request.
 */
export class SharedRateBudget implements RateBudget {
  private readonly windows: RateWindows;
  private readonly table: BudgetTable;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly maxBlock: number;
  private readonly lanes = new Map<string, Lane>();

  constructor(options: SharedRateBudgetOptions) {
    this.windows = new RateWindows({ ...EXACT_RATE_LIMITS, ...options.limits });
    this.table = new BudgetTable(options.client ?? processClient(), options.tableName, this.windows.dayCap);
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.maxBlock = Math.max(1, options.maxBlock ?? DEFAULT_MAX_BLOCK);
  }

  /**
   * Resolves at the moment one call of `key` may go to Exact (the slot's grid point), never past
   * `deadlineMs` (epoch ms).
   * @throws Throttled with `retryAfterSeconds`: the day's budget is spent (until the reset Exact
   *   reported with `X-RateLimit-Remaining: 0`, else UTC midnight), or no slot is free before
   *   `deadlineMs`. DynamoDB's own errors as they come.
   */
  async acquire(key: RateKey, deadlineMs: number): Promise<void> {
    const lane = this.lane(key);
    const waiter = { deadlineMs };
    const startMs = this.now();
    lane.active += 1;
    this.notePeak(lane, startMs);
    // A caller back within a spacing of its last slot (a paging loop) can use the next grid points.
    lane.streak = startMs <= lane.lastGrantAtMs + this.windows.spacingMs ? lane.streak + 1 : 0;
    lane.needs.add(waiter);
    try {
      for (;;) {
        const now = this.now();
        this.syncDay(lane, now);
        if (lane.daySpentUntilMs > now)
          throw daySpent(key, this.windows.limits.callsPerDay, now, lane.daySpentUntilMs);
        const slot = this.takeSlot(lane, now);
        if (slot !== undefined) {
          if (slot.atMs > deadlineMs) {
            lane.slots.unshift(slot);
            throw noSlotBeforeDeadline(key, this.windows.slotsPerMinute, now, slot.atMs);
          }
          lane.needs.delete(waiter);
          lane.held.add(slot);
          if (slot.atMs > now) await this.sleep(slot.atMs - now);
          lane.held.delete(slot);
          if (!slot.revoked) {
            lane.lastGrantAtMs = Math.max(lane.lastGrantAtMs, slot.atMs);
            return;
          }
          lane.needs.add(waiter);
          continue;
        }
        if (lane.claim === undefined) {
          // What the item looked like last: a spent day or minute only stays spent.
          const plan = this.windows.plan(lane.state, now, 1, deadlineMs, lane.giveBack);
          if (plan.kind === "daySpent")
            throw daySpent(key, this.windows.limits.callsPerDay, now, plan.untilMs);
          if (plan.kind === "wait") {
            if (plan.untilMs > deadlineMs)
              throw noSlotBeforeDeadline(key, this.windows.slotsPerMinute, now, plan.untilMs);
            await this.sleep(plan.untilMs - now);
            continue;
          }
          lane.claim = this.claim(lane).finally(() => {
            lane.claim = undefined;
          });
        }
        await lane.claim;
      }
    } finally {
      lane.needs.delete(waiter);
      lane.active -= 1;
    }
  }

  /**
   * Takes Exact's count into the shared budget where it shows calls ours do not explain (callers
   * outside the broker, or a 429): the rest of the minute and of the day shrink by them. Nothing
   * is written while our own calls explain Exact's count.
   * @throws DynamoDB's errors as they come (the call to Exact has happened; the caller decides).
   */
  async observe(key: RateKey, observation: RateLimitObservation): Promise<void> {
    const lane = this.lane(key);
    const now = this.now();
    this.syncDay(lane, now);
    const { day } = lane;
    const minute = this.windows.minuteOf(now);
    this.trimSlots(lane, observation, now);
    if (observation.dailyRemaining === 0)
      lane.daySpentUntilMs = Math.max(lane.daySpentUntilMs, this.dayResetMs(observation, now));
    const excess = this.windows.minuteExcess(observation, now);
    const dayCount = this.windows.exactDayCount(observation, now);
    const dayTarget = (state: BudgetState) => (dayCount ?? 0) + this.windows.pending(state, now);
    const dayLooksShort = dayCount !== undefined && dayTarget(lane.state) > (lane.state.dayCalls ?? 0);
    if (excess === undefined && !dayLooksShort) return;

    const item = await this.table.read(key, day);
    let state: BudgetState | undefined;
    if (excess !== undefined && (item.minute === undefined || item.minute <= minute)) {
      const sameMinute = item.minute === minute;
      const raise = excess - (sameMinute ? (item.excessSeen ?? 0) : 0);
      if (raise > 0) {
        const ours = Math.max(sameMinute ? (item.next ?? 0) : 0, this.windows.gridSoFar(now));
        const target = ours + raise;
        state = await this.table.raiseMinute(key, day, { minute, target, excess, sameMinute });
      }
    }
    if (dayCount !== undefined && dayTarget(item) > (item.dayCalls ?? 0)) {
      state = (await this.table.raiseDay(key, day, dayTarget(item))) ?? state;
    }
    if (state !== undefined && lane.day === day) lane.state = state;
  }

  private lane(key: RateKey): Lane {
    const id = `${key.clientId}#${key.division}`;
    let lane = this.lanes.get(id);
    if (lane === undefined) {
      const now = this.now();
      lane = {
        key,
        day: this.windows.dayOf(now),
        state: {},
        slots: [],
        held: new Set(),
        giveBack: 0,
        daySpentUntilMs: Number.NEGATIVE_INFINITY,
        needs: new Set(),
        active: 0,
        peak: 0,
        peakAtMs: now,
        lastGrantAtMs: Number.NEGATIVE_INFINITY,
        streak: 0,
        claim: undefined,
      };
      this.lanes.set(id, lane);
    }
    return lane;
  }

  /** One claim for the lane's waiters (one at a time per lane): slots into `lane.slots`, or none. */
  private async claim(lane: Lane): Promise<void> {
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt += 1) {
      const now = this.now();
      this.syncDay(lane, now);
      if (lane.needs.size === 0) return;
      const deadlineMs = Math.max(...[...lane.needs].map((waiter) => waiter.deadlineMs));
      const want = Math.min(
        this.maxBlock,
        Math.max(lane.needs.size, this.notePeak(lane, now), lane.streak + 1),
      );
      const { day, giveBack } = lane;
      const plan = this.windows.plan(lane.state, now, want, deadlineMs, giveBack);
      if (plan.kind === "wait" || plan.kind === "daySpent") return;
      const outcome = await this.table.claim(lane.key, day, plan, giveBack);
      if (outcome.ok) {
        for (let i = 0; i < plan.k; i += 1) {
          lane.slots.push({ atMs: this.windows.slotAtMs(plan.minute, outcome.first + i), day });
        }
        if (lane.day === day) {
          lane.state = outcome.state;
          lane.giveBack -= giveBack;
        }
        return;
      }
      const state = outcome.state ?? (await this.table.read(lane.key, day));
      if (lane.day === day) lane.state = state;
    }
  }

  /** The earliest held slot not yet too late; later ones that are go back to the day. */
  private takeSlot(lane: Lane, nowMs: number): Slot | undefined {
    for (let slot = lane.slots.shift(); slot !== undefined; slot = lane.slots.shift()) {
      if (slot.atMs + this.windows.lateMs >= nowMs) return slot;
      if (slot.day === lane.day) lane.giveBack += 1;
    }
    return undefined;
  }

  /**
   * Holds no slot Exact has no room for: after an answer saying `r` calls remain in its minute
   * window, none past the first `r − 1` grid points to come in it. Grid points are shared, so every
   * process trimming to the same point keeps the slots held by all of them within Exact's room;
   * another process's slots go at its own next answer. A spent day (a daily 429, or
   * `X-RateLimit-Remaining: 0`) drops every slot.
   */
  private trimSlots(lane: Lane, observation: RateLimitObservation, nowMs: number): void {
    const window = this.windows.exactMinute(observation, nowMs);
    const dayRefused = observation.dailyRemaining === 0;
    if (window === undefined && !dayRefused) return;
    const fromMs =
      window === undefined || window.remaining <= 1
        ? Number.NEGATIVE_INFINITY
        : this.windows.pointAfter(nowMs, window.remaining);
    const toMs = dayRefused || window === undefined ? Number.POSITIVE_INFINITY : window.endMs;
    const dropped = (slot: Slot) => slot.atMs >= fromMs && slot.atMs < toMs;
    for (const slot of [...lane.slots, ...lane.held].filter(dropped)) {
      slot.revoked = true;
      if (slot.day === lane.day) lane.giveBack += 1;
    }
    lane.slots = lane.slots.filter((slot) => !slot.revoked);
  }

  /**
   * When Exact gives a spent day back: the reset it reported (its day need not be the UTC day:
   * a service may reset at its local midnight), else UTC midnight. A reset past or more than a
   * day ahead is no reset of this day's budget: UTC midnight then too.
   */
  private dayResetMs(observation: RateLimitObservation, nowMs: number): number {
    const { dailyResetAtMs } = observation;
    return dailyResetAtMs !== undefined && dailyResetAtMs > nowMs && dailyResetAtMs <= nowMs + DAY_MS
      ? dailyResetAtMs
      : this.windows.dayEndMs(nowMs);
  }

  private syncDay(lane: Lane, nowMs: number): void {
    const day = this.windows.dayOf(nowMs);
    if (day === lane.day) return;
    lane.day = day;
    lane.state = {};
    lane.giveBack = 0;
  }

  /** The most callers inside `acquire` at once within the last minute. */
  private notePeak(lane: Lane, nowMs: number): number {
    if (lane.active >= lane.peak || nowMs - lane.peakAtMs > MINUTE_MS) {
      lane.peak = lane.active;
      lane.peakAtMs = nowMs;
    }
    return lane.peak;
  }
}
