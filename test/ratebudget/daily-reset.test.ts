import { afterEach, describe, expect, it } from "vitest";
import { Throttled } from "../../lib/errors.js";
import { type BudgetWorld, KEY, startBudgetWorld, T0 } from "./support.js";

// Exact reports its daily reset in every answer (X-RateLimit-Reset), and it need not be UTC
// midnight (a service resetting at Europe/Amsterdam midnight: 23:00Z in winter). Once Exact says
// the day is spent, calls fail fast until that reset instead of meeting 429 after 429.

let world: BudgetWorld;
afterEach(() => world?.close());

const throttledOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

describe("SharedRateBudget: a spent day with Exact's reset off UTC midnight", () => {
  const cetMidnight = Date.UTC(2026, 0, 5, 23, 0, 0);

  it.each([
    ["a daily 429", { rateLimited: true }],
    ["a last call answered with X-RateLimit-Remaining 0", { rateLimited: false }],
  ])("after %s, throws Throttled until the reset Exact reported, with no request", async (_what, answer) => {
    world = await startBudgetWorld(T0);
    const { budget, counts } = world.process();
    await world.drive(() => budget.acquire(KEY, T0 + 30_000));
    await budget.observe(KEY, { ...answer, dailyRemaining: 0, dailyResetAtMs: cetMidnight });
    const before = { ...counts };
    const now = world.clock.now();

    const error = await throttledOf(world.drive(() => budget.acquire(KEY, now + 30_000)));

    expect(error).toBeInstanceOf(Throttled);
    expect((error as Throttled).retryAfterSeconds).toBe(Math.ceil((cetMidnight - now) / 1000));
    expect((error as Throttled).message).toContain("spent until 2026-01-05T23:00:00.000Z");
    expect(counts).toEqual(before);
  });

  it("hands out slots again once Exact's reset has passed", async () => {
    world = await startBudgetWorld(cetMidnight - 60_000);
    const { budget } = world.process();
    await budget.observe(KEY, { rateLimited: true, dailyRemaining: 0, dailyResetAtMs: cetMidnight });
    await expect(budget.acquire(KEY, cetMidnight)).rejects.toBeInstanceOf(Throttled);

    await world.drive(() => world.clock.sleepUntil(cetMidnight));
    const outcome = await world.drive(() => budget.acquire(KEY, cetMidnight + 30_000));

    expect(outcome).toBeUndefined();
    expect(world.clock.now()).toBeGreaterThanOrEqual(cetMidnight);
  });
});
