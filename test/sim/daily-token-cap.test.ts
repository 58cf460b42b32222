import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import {
  ALICE,
  APP,
  BOB,
  generationOf,
  login,
  OTHER_APP,
  refresh,
  START_MS,
  startTestSimulator,
} from "./helpers.js";

const KEY = `${APP.clientId}/${ALICE.username}`;
const DAY_END_MS = Date.UTC(2026, 0, 6);

describe("daily token cap (variant dailyTokenCap, answer unconfirmed)", () => {
  let sim: Simulator;

  beforeAll(async () => {
    // Refreshes are allowed at once, so a test can make many successful token calls.
    sim = await startTestSimulator({ accessTtlSeconds: 20, refreshAfterSeconds: 0 });
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  /** Refreshes `times` times along the chain; the statuses, and the refresh token left live. */
  async function refreshes(refreshToken: string, times: number, app = APP): Promise<[number[], string]> {
    const statuses: number[] = [];
    let live = refreshToken;
    for (let i = 0; i < times; i++) {
      const response = await refresh(sim, live, app);
      statuses.push(response.status);
      live = response.body.refresh_token ?? live;
    }
    return [statuses, live];
  }

  it("refuses the pair's token calls past the cap with a 429 until the UTC day of sim time ends", async () => {
    sim.setVariants({ dailyTokenCap: true, dailyTokenCapPerDay: 3 });
    const tokens = await login(sim);
    const [served, live] = await refreshes(tokens.refreshToken, 2);

    const refused = await refresh(sim, live);
    sim.advanceClock((DAY_END_MS - START_MS) / 1000 - 1);
    const lastSecond = await refresh(sim, live);
    sim.advanceClock(1);
    const nextDay = await refresh(sim, live);

    expect(served).toEqual([200, 200]);
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({
      error: "too_many_requests",
      error_description:
        "Token request limit exceeded: 3 token requests today for this app and user; blocked until 2026-01-06T00:00:00.000Z",
    });
    expect(refused.headers.get("retry-after")).toBe(String((DAY_END_MS - START_MS) / 1000));
    expect(lastSecond.status).toBe(429);
    expect(nextDay.status).toBe(200);
    expect(generationOf(sim)).toBe(4);
    expect(sim.stats().chains[KEY]?.tokenRequests).toMatchObject({ daily_cap: 2, issued: 4 });
  });

  it("counts failed calls too, and only the (app, user) pair that made them", async () => {
    sim.setVariants({ dailyTokenCap: true, dailyTokenCapPerDay: 3 });
    const alice = await login(sim);
    const bob = await login(sim, APP, BOB.username);
    const aliceElsewhere = await login(sim, OTHER_APP);
    await refresh(sim, alice.refreshToken);
    const oldToken = await refresh(sim, alice.refreshToken);

    const capped = await refresh(sim, alice.refreshToken);

    expect(oldToken.status).toBe(401);
    expect(capped.status).toBe(429);
    expect((await refresh(sim, bob.refreshToken)).status).toBe(200);
    expect((await refresh(sim, aliceElsewhere.refreshToken, OTHER_APP)).status).toBe(200);
  });

  it("counts calls while it is off, so switching it on applies to the calls of the day so far", async () => {
    const tokens = await login(sim);
    const [, live] = await refreshes(tokens.refreshToken, 2);

    sim.setVariants({ dailyTokenCap: true, dailyTokenCapPerDay: 3 });

    expect((await refresh(sim, live)).status).toBe(429);
  });

  it("allows 200 calls a day by default, and none is refused while the variant is off", async () => {
    const tokens = await login(sim);
    const [offStatuses] = await refreshes(tokens.refreshToken, 209);
    sim.reset();
    sim.setVariants({ dailyTokenCap: true });
    const again = await login(sim);
    const [onStatuses] = await refreshes(again.refreshToken, 200);

    expect(offStatuses.every((status) => status === 200)).toBe(true);
    expect(onStatuses.slice(0, 199).every((status) => status === 200)).toBe(true);
    expect(onStatuses[199]).toBe(429);
  });
});
