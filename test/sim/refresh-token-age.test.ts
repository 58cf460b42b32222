import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ValidationError } from "../../lib/errors.js";
import type { Simulator } from "../../lib/sim/server.js";
import { ALICE, APP, BOB, control, login, refresh, START_MS, startTestSimulator } from "./helpers.js";

const DAY_S = 86_400;

describe("a refresh token's age (POST /_sim/refresh-token-age)", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  it("expires the live refresh token 30 days after the age it was given, to the second", async () => {
    const tokens = await login(sim);

    const expiresAtMs = sim.setRefreshTokenAge({
      clientId: APP.clientId,
      username: ALICE.username,
      ageSeconds: 29 * DAY_S,
    });

    expect(expiresAtMs).toBe(START_MS + DAY_S * 1000);
    sim.advanceClock(DAY_S - 1);
    const saved = await refresh(sim, tokens.refreshToken);
    expect(saved.status).toBe(200);
    // The token it returned is new: a full 30 days from now.
    sim.advanceClock(29 * DAY_S);
    expect((await refresh(sim, saved.body.refresh_token)).status).toBe(200);
  });

  it("leaves a token aged past 30 days expired, as Exact answers it", async () => {
    const tokens = await login(sim);
    sim.setRefreshTokenAge({ clientId: APP.clientId, username: ALICE.username, ageSeconds: 30 * DAY_S });

    const response = await refresh(sim, tokens.refreshToken);

    expect(response.status).toBe(400);
    expect(response.body.error_description).toMatch(/^The refresh token expired at /);
    expect(sim.stats().totals.tokenRequests.expired).toBe(1);
  });

  it("changes neither the chain's generation nor the too-early rule", async () => {
    await login(sim);
    const before = sim.stats().chains[`${APP.clientId}/${ALICE.username}`];

    sim.setRefreshTokenAge({ clientId: APP.clientId, username: ALICE.username, ageSeconds: DAY_S });

    const after = sim.stats().chains[`${APP.clientId}/${ALICE.username}`];
    expect(after?.generation).toBe(before?.generation);
    expect(after?.liveRefreshHash).toBe(before?.liveRefreshHash);
  });

  it("is on the control API, answering when the token expires", async () => {
    await login(sim);

    const response = await control(sim, "POST", "/_sim/refresh-token-age", {
      clientId: APP.clientId,
      username: ALICE.username,
      ageSeconds: 10 * DAY_S,
    });

    expect(response).toMatchObject({
      status: 200,
      body: { expiresAt: new Date(START_MS + 20 * DAY_S * 1000).toISOString() },
    });
  });

  it.each([
    ["a pair without a chain", { clientId: APP.clientId, username: BOB.username, ageSeconds: 1 }, /no chain/],
    ["an unknown client", { clientId: "nope", username: ALICE.username, ageSeconds: 1 }, /unknown clientId/],
    ["an unknown user", { clientId: APP.clientId, username: "nobody", ageSeconds: 1 }, /unknown username/],
    ["a negative age", { clientId: APP.clientId, username: ALICE.username, ageSeconds: -1 }, /ageSeconds/],
    ["an unknown field", { clientId: APP.clientId, username: ALICE.username, ageSeconds: 1, x: 1 }, /"x"/],
  ])("refuses %s", async (_case, spec, message) => {
    await login(sim);

    expect(() => sim.setRefreshTokenAge(spec as never)).toThrow(ValidationError);
    expect(() => sim.setRefreshTokenAge(spec as never)).toThrow(message);
    expect((await control(sim, "POST", "/_sim/refresh-token-age", spec)).status).toBe(400);
  });
});
