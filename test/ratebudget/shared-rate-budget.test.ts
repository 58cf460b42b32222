import { afterEach, describe, expect, it } from "vitest";
import { Throttled } from "../../lib/errors.js";
import { MINUTE_MS, RateWindows } from "../../lib/ratebudget/rate-windows.js";
import { type BudgetWorld, KEY, mostInAnyWindow, startBudgetWorld, T0, total } from "./support.js";

const windows = new RateWindows({ callsPerMinute: 60, callsPerDay: 5000, minuteMargin: 2, dayMargin: 10 });
const SPACING_MS = MINUTE_MS / 58;

async function throttledOf(call: Promise<unknown>): Promise<Throttled> {
  const error = await call.then(
    () => new Error("expected Throttled"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Throttled);
  return error as Throttled;
}

describe("SharedRateBudget", () => {
  let world: BudgetWorld;
  afterEach(() => world?.close());

  describe("acquire", () => {
    it("never hands out more than 58 slots in a clock minute to 40 callers over 4 budgets (own DynamoDB clients), paced on the grid", async () => {
      world = await startBudgetWorld();
      const processes = Array.from({ length: 4 }, () => world.process());
      const stopAt = T0 + 3 * MINUTE_MS;
      const grants: number[] = [];
      const caller = async (budget: (typeof processes)[number]["budget"]) => {
        while (world.clock.now() < stopAt) {
          try {
            await budget.acquire(KEY, Math.min(world.clock.now() + 60_000, stopAt));
            grants.push(world.clock.now());
          } catch (error) {
            if (!(error instanceof Throttled)) throw error;
            await world.clock.sleep((error.retryAfterSeconds ?? 1) * 1000);
          }
        }
      };

      await world.drive(() =>
        Promise.all(processes.flatMap(({ budget }) => Array.from({ length: 10 }, () => caller(budget)))),
      );

      const perMinute = [0, 1, 2].map(
        (m) => grants.filter((t) => Math.floor((t - T0) / MINUTE_MS) === m).length,
      );
      expect(perMinute).toEqual([58, 58, 58]);
      expect(mostInAnyWindow(grants, MINUTE_MS)).toBeLessThanOrEqual(59);
      const sorted = [...grants].sort((a, b) => a - b);
      const gaps = sorted.slice(1).map((t, i) => t - (sorted[i] ?? 0));
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(Math.floor(SPACING_MS));
      // Every slot handed out was used, and counted once for the day.
      expect((await world.item(T0))?.dayCalls).toBe(String(grants.length));
      // Blocks of up to 5 slots per claim (one slot a claim would be at least 1 write a call).
      const writes = processes.reduce((sum, p) => sum + (p.counts.UpdateItem ?? 0), 0);
      expect(writes / grants.length).toBeLessThan(0.5);
    });

    it("costs one UpdateItem per call, and no read, for a caller that comes back less often than the grid", async () => {
      world = await startBudgetWorld();
      const { budget, counts } = world.process();

      await world.drive(async () => {
        for (let i = 0; i < 10; i += 1) {
          await budget.acquire(KEY, world.clock.now() + 60_000);
          await world.clock.sleep(5_000);
        }
      });

      expect(counts).toEqual({ UpdateItem: 10 });
      expect((await world.item(T0))?.dayCalls).toBe("10");
    });

    it("reserves growing blocks for a paging loop, and gives the unused ones back to the day", async () => {
      world = await startBudgetWorld();
      const { budget, counts } = world.process();
      const grants: number[] = [];

      await world.drive(async () => {
        for (let i = 0; i < 10; i += 1) {
          await budget.acquire(KEY, world.clock.now() + 60_000);
          grants.push(world.clock.now());
        }
      });
      const afterLoop = await world.item(T0);
      await world.clock.runUntil(T0 + 30_000);
      await world.drive(() => budget.acquire(KEY, world.clock.now() + 60_000));

      // Blocks of 1, 2, 4 and 5 slots: four writes for ten back-to-back calls, on consecutive grid points.
      expect(counts).toEqual({ UpdateItem: 5 });
      expect(grants).toEqual(Array.from({ length: 10 }, (_, i) => T0 + Math.ceil(i * SPACING_MS)));
      expect(afterLoop?.dayCalls).toBe("12");
      // The two slots left over went late; the next claim (one slot) returned them.
      expect((await world.item(T0))?.dayCalls).toBe("11");
    });

    it("fails fast with Throttled until UTC midnight once the day's budget is spent", async () => {
      const start = Date.UTC(2026, 0, 5, 23, 58, 0);
      world = await startBudgetWorld(start);
      const limits = { callsPerDay: 12, dayMargin: 2 };
      const first = world.process({ limits });
      await world.drive(async () => {
        for (let i = 0; i < 10; i += 1) await first.budget.acquire(KEY, world.clock.now() + 60_000);
      });
      const spentAt = world.clock.now();
      const midnight = Date.UTC(2026, 0, 6);

      const again = await throttledOf(first.budget.acquire(KEY, spentAt + 60_000));
      const before = total(first.counts);
      const twice = await throttledOf(first.budget.acquire(KEY, spentAt + 60_000));
      const other = world.process({ limits });
      const elsewhere = await throttledOf(other.budget.acquire(KEY, spentAt + 60_000));

      expect(again.retryAfterSeconds).toBe(Math.ceil((midnight - spentAt) / 1000));
      expect(again.message).toContain("spent until 2026-01-06T00:00:00.000Z");
      expect(twice.retryAfterSeconds).toBe(again.retryAfterSeconds);
      expect(total(first.counts)).toBe(before); // known locally: no request
      // A process that did not know: one write that lost, and on dynalite one read for the item.
      expect(other.counts).toEqual({ UpdateItem: 1, GetItem: 1 });
      expect(elsewhere.retryAfterSeconds).toBe(again.retryAfterSeconds);
      expect(world.clock.now()).toBe(spentAt); // nobody waited
    });

    it("throws Throttled at once when no slot is free before the deadline, and never returns past it", async () => {
      world = await startBudgetWorld();
      const { budget } = world.process();
      const deadline = T0 + 5_000;
      const outcomes: Array<{ atMs: number; retryAfterSeconds?: number }> = [];

      await world.drive(() =>
        Promise.all(
          Array.from({ length: 12 }, () =>
            budget.acquire(KEY, deadline).then(
              () => outcomes.push({ atMs: world.clock.now() }),
              (error: unknown) => {
                if (!(error instanceof Throttled)) throw error;
                outcomes.push({ atMs: world.clock.now(), retryAfterSeconds: error.retryAfterSeconds });
              },
            ),
          ),
        ),
      );

      const served = outcomes.filter((o) => o.retryAfterSeconds === undefined);
      const refused = outcomes.filter((o) => o.retryAfterSeconds !== undefined);
      // Grid points 0, 1.03, 2.07, 3.10 and 4.14 s lie before the deadline; 5.17 s does not.
      expect(served.map((o) => o.atMs)).toEqual([0, 1, 2, 3, 4].map((i) => T0 + Math.ceil(i * SPACING_MS)));
      expect(refused).toHaveLength(7);
      expect(refused.every((o) => o.atMs === T0 && (o.retryAfterSeconds ?? 0) >= 1)).toBe(true);
    });

    it("writes the item with its TTL a day after the day ends", async () => {
      world = await startBudgetWorld();
      const { budget } = world.process();

      await world.drive(() => budget.acquire(KEY, T0 + 10_000));

      const day = Math.floor(T0 / 86_400_000);
      expect(await world.item(T0)).toEqual({
        pk: `RATE#${KEY.clientId}#${KEY.division}#2026-01-05`,
        minute: String(T0 / MINUTE_MS),
        next: "1",
        dayCalls: "1",
        expiresAtEpochSec: String((day + 2) * 86_400),
      });
    });
  });

  describe("observe", () => {
    const minuteEnd = T0 + MINUTE_MS;

    it("lowers what is left of the minute by the calls Exact counted that ours do not explain, once", async () => {
      world = await startBudgetWorld(T0 + 2_000);
      const { budget } = world.process();
      // Exact counted 20 this minute; our grid could have placed 2 (0 s and 1.03 s): 18 are others'.
      const observation = { minutelyRemaining: 40, minutelyResetAtMs: minuteEnd, rateLimited: false };

      await budget.observe(KEY, observation);
      await world.process().budget.observe(KEY, observation);
      await world.drive(() => budget.acquire(KEY, minuteEnd));

      expect((await world.item(T0))?.next).toBe("21");
      expect(world.clock.now()).toBe(T0 + Math.ceil(20 * SPACING_MS));
    });

    it("writes nothing while our own calls explain Exact's count", async () => {
      world = await startBudgetWorld();
      const { budget, counts } = world.process();
      await world.drive(async () => {
        for (let i = 0; i < 3; i += 1) await budget.acquire(KEY, minuteEnd);
      });
      const before = total(counts);

      await budget.observe(KEY, {
        minutelyRemaining: 57,
        minutelyResetAtMs: minuteEnd,
        dailyRemaining: 4997,
        dailyResetAtMs: Date.UTC(2026, 0, 6),
        rateLimited: false,
      });

      expect(total(counts)).toBe(before);
    });

    it("takes a 429 as the minute spent: the next call waits for the next minute, or is Throttled before it", async () => {
      world = await startBudgetWorld(T0 + 10_000);
      const { budget } = world.process();

      await budget.observe(KEY, { minutelyRemaining: 0, minutelyResetAtMs: minuteEnd, rateLimited: true });
      const elsewhere = await throttledOf(world.process().budget.acquire(KEY, minuteEnd - 1));
      await world.drive(() => budget.acquire(KEY, minuteEnd + 10_000));

      expect(elsewhere.retryAfterSeconds).toBe(50);
      expect(world.clock.now()).toBe(minuteEnd);
    });

    it("takes Exact's daily count: Throttled until midnight when others spent the day", async () => {
      world = await startBudgetWorld();
      const { budget } = world.process();

      await budget.observe(KEY, {
        dailyRemaining: 5,
        dailyResetAtMs: Date.UTC(2026, 0, 6),
        minutelyRemaining: 59,
        minutelyResetAtMs: minuteEnd,
        rateLimited: false,
      });
      const error = await throttledOf(budget.acquire(KEY, minuteEnd));

      expect(error.retryAfterSeconds).toBe((Date.UTC(2026, 0, 6) - T0) / 1000);
      expect((await world.item(T0))?.dayCalls).toBe("4995");
    });
  });
});

describe("RateWindows", () => {
  it("puts 58 grid points in each minute, the last 58.97 s in", () => {
    expect(windows.slotAtMs(T0 / MINUTE_MS, 0)).toBe(T0);
    expect(windows.slotAtMs(T0 / MINUTE_MS, 57)).toBe(T0 + 58_966);
    expect(windows.gridCount(T0, T0 + MINUTE_MS - 1)).toBe(58);
  });

  it.each([0, 250, 517, 30_000, 59_999])(
    "puts at most 59 grid points' calls in any 60 s window starting %i ms into a minute, late by up to one spacing",
    (offsetMs) => {
      const from = T0 + offsetMs;
      // Calls reach Exact up to (almost) one spacing after their grid point.
      expect(windows.gridCount(from - SPACING_MS + 1, from + MINUTE_MS - 1)).toBeLessThanOrEqual(59);
    },
  );

  it("skips slots more than half a spacing late, not banking them", () => {
    expect(windows.floorIndex(T0 + 517)).toBe(0);
    expect(windows.floorIndex(T0 + 518)).toBe(1);
    expect(windows.plan({ minute: T0 / MINUTE_MS, next: 3 }, T0 + 30_000, 5, T0 + MINUTE_MS)).toMatchObject({
      kind: "restart",
      first: 29,
      k: 5,
    });
  });
});
