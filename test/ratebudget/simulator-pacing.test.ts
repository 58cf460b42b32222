import { afterEach, describe, expect, it } from "vitest";
import { parseRateLimitHeaders } from "../../lib/client/rate-limit-headers.js";
import { Throttled } from "../../lib/errors.js";
import { MINUTE_MS } from "../../lib/ratebudget/rate-windows.js";
import type { Simulator } from "../../lib/sim/server.js";
import { ALICE, APP, login, startTestSimulator } from "../sim/helpers.js";
import { type BudgetWorld, KEY, startBudgetWorld, T0 } from "./support.js";

const ACCOUNTS = `/api/v1/${ALICE.division}/crm/Accounts?$top=1`;

interface Run {
  readonly statuses: Record<number, number>;
  /** The simulator's answers per clock minute that it charged. */
  readonly chargedPerMinute: number[];
}

/**
 * Another system using the same app and division bursts 25 calls at the start of the first minute
 * and 25 at 90 s, straight at Exact; 10 consumers in 2 processes call through the budget for two
 * minutes, feeding (or not) Exact's headers back.
 */
async function runWithOutsideCaller(world: BudgetWorld, sim: Simulator, observe: boolean): Promise<Run> {
  expect(KEY).toEqual({ clientId: APP.clientId, division: ALICE.division });
  const { accessToken } = await login(sim);
  const headers = { Authorization: `Bearer ${accessToken}`, Accept: "application/json" };
  const call = () => world.clock.track(() => fetch(`${sim.url}${ACCOUNTS}`, { headers }));
  const statuses: Record<number, number> = {};
  const charged = [0, 0];
  const stopAt = T0 + 2 * MINUTE_MS;
  const outside = async () => {
    for (const atMs of [T0, T0 + 90_000]) {
      await world.clock.sleepUntil(atMs);
      for (let i = 0; i < 25; i += 1) await (await call()).arrayBuffer();
    }
  };
  const consumer = async (budget: ReturnType<BudgetWorld["process"]>["budget"]) => {
    // The outside burst at T0 goes first.
    await world.clock.sleep(1);
    while (world.clock.now() < stopAt) {
      try {
        await budget.acquire(KEY, Math.min(world.clock.now() + 60_000, stopAt));
      } catch (error) {
        if (!(error instanceof Throttled)) throw error;
        await world.clock.sleep((error.retryAfterSeconds ?? 1) * 1000);
        continue;
      }
      const response = await call();
      await response.arrayBuffer();
      statuses[response.status] = (statuses[response.status] ?? 0) + 1;
      const minute = Math.floor((world.clock.now() - T0) / MINUTE_MS);
      if (response.status === 200 && minute < 2) charged[minute] = (charged[minute] ?? 0) + 1;
      if (observe) await budget.observe(KEY, parseRateLimitHeaders(response.headers, response.status));
    }
  };
  const processes = [world.process(), world.process()];
  await world.drive(() =>
    Promise.all([
      outside(),
      ...processes.flatMap(({ budget }) => Array.from({ length: 5 }, () => consumer(budget))),
    ]),
  );
  return { statuses, chargedPerMinute: charged.map((ours) => ours + 25) };
}

describe("SharedRateBudget against the simulator's rate limits", () => {
  let world: BudgetWorld;
  let sim: Simulator;
  afterEach(async () => {
    await sim?.close();
    await world?.close();
  });

  it("meets no 429 when Exact's headers show another system's calls: observe makes room for them", async () => {
    world = await startBudgetWorld();
    sim = await startTestSimulator({ now: world.clock.now });

    const run = await runWithOutsideCaller(world, sim, true);

    expect(run.statuses[429] ?? 0).toBe(0);
    expect(run.chargedPerMinute.every((n) => n >= 55 && n <= 60)).toBe(true);
  });

  it("meets 429s in the same run without observe (what the test above guards against)", async () => {
    world = await startBudgetWorld();
    sim = await startTestSimulator({ now: world.clock.now });

    const run = await runWithOutsideCaller(world, sim, false);

    expect(run.statuses[429] ?? 0).toBeGreaterThan(10);
  });
});
