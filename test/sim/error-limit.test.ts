import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import {
  ALICE,
  APP,
  BOB,
  generationOf,
  getMe,
  login,
  OTHER_APP,
  refresh,
  START_MS,
  startTestSimulator,
} from "./helpers.js";

const HOUR_END_ISO = new Date(START_MS + 3600_000).toISOString();

describe("error limit (rule 7)", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  async function tooEarlyTimes(refreshToken: string, times: number, app = APP): Promise<number[]> {
    const statuses: number[] = [];
    for (let i = 0; i < times; i++) {
      statuses.push((await refresh(sim, refreshToken, app)).status);
    }
    return statuses;
  }

  it("answers the 10th error normally and blocks every request after it with 429 until the hour ends", async () => {
    const tokens = await login(sim);
    const statuses = await tooEarlyTimes(tokens.refreshToken, 10);
    sim.advanceClock(570);

    const blocked = await refresh(sim, tokens.refreshToken);

    expect(statuses).toEqual(Array(10).fill(400));
    expect(blocked.status).toBe(429);
    expect(blocked.body).toEqual({
      error: "rate_limited",
      error_description: `Error limit exceeded: more than 10 errors this hour for this app, user and endpoint; blocked until ${HOUR_END_ISO}`,
    });
    expect(blocked.headers.get("retry-after")).toBe(String(3600 - 570));
    expect(generationOf(sim)).toBe(1);
    expect(sim.stats().chains[`${APP.clientId}/${ALICE.username}`]?.tokenRequests.error_limited).toBe(1);
  });

  it("lifts the block when the clock hour of sim time ends", async () => {
    const tokens = await login(sim);
    await tooEarlyTimes(tokens.refreshToken, 10);
    sim.advanceClock(3599);
    expect((await refresh(sim, tokens.refreshToken)).status).toBe(429);

    sim.advanceClock(1);

    expect((await refresh(sim, tokens.refreshToken)).status).toBe(200);
  });

  it("keeps other users, other apps and the other endpoint out of the block", async () => {
    const alice = await login(sim);
    const bob = await login(sim, APP, BOB.username);
    const aliceOtherApp = await login(sim, OTHER_APP);
    await tooEarlyTimes(alice.refreshToken, 10);
    sim.advanceClock(570);

    expect((await refresh(sim, alice.refreshToken)).status).toBe(429);
    expect((await refresh(sim, bob.refreshToken)).status).toBe(200);
    expect((await refresh(sim, aliceOtherApp.refreshToken, OTHER_APP)).status).toBe(200);
    expect((await getMe(sim, alice.accessToken)).status).toBe(200);
  });

  it("counts the 401s of /current/Me per user and then blocks that user's valid tokens too", async () => {
    const expired = await login(sim);
    sim.advanceClock(600);
    const fresh = await login(sim);
    const meStatuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      meStatuses.push((await getMe(sim, expired.accessToken)).status);
    }

    const blocked = await getMe(sim, fresh.accessToken);

    expect(meStatuses).toEqual(Array(10).fill(401));
    expect(blocked.status).toBe(429);
    expect(blocked.body.error).toBe("rate_limited");
    expect(sim.stats().totals.meRequests).toMatchObject({ unauthorized: 10, error_limited: 1 });
  });

  it("charges requests without a known user to the client with user '-'", async () => {
    const alice = await login(sim);
    for (let i = 0; i < 10; i++) {
      await refresh(sim, `simRT!unknown!${i}`);
    }

    const blocked = await refresh(sim, "simRT!unknown!again");

    expect(blocked.status).toBe(429);
    expect(sim.stats().totals.tokenRequests.error_limited).toBe(1);
    expect(sim.stats().chains[`${APP.clientId}/${ALICE.username}`]?.tokenRequests.error_limited).toBe(0);
    sim.advanceClock(570);
    expect((await refresh(sim, alice.refreshToken)).status).toBe(200);
  });

  it("charges a rotated-away refresh token to the user it was issued to", async () => {
    const tokens = await login(sim);
    sim.advanceClock(570);
    const current = (await refresh(sim, tokens.refreshToken)).body.refresh_token;
    for (let i = 0; i < 10; i++) {
      await refresh(sim, tokens.refreshToken);
    }
    sim.advanceClock(570);

    expect((await refresh(sim, current)).status).toBe(429);
  });
});
