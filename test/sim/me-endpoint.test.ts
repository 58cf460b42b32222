import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import { ALICE, BOB, getMe, login, refresh, startTestSimulator } from "./helpers.js";

const UNAUTHORIZED = { error: { code: "", message: { lang: "", value: "Unauthorized" } } };

describe("GET /api/v1/current/Me (rule 9)", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  it("answers the token's user in Exact's OData shape", async () => {
    const tokens = await login(sim);

    const response = await getMe(sim, tokens.accessToken);

    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      d: {
        results: [
          {
            UserID: ALICE.userId,
            UserName: ALICE.username,
            FullName: ALICE.fullName,
            CurrentDivision: ALICE.division,
            Email: ALICE.username,
          },
        ],
      },
    });
  });

  it("fills in defaults for a user created with the minimum", async () => {
    const tokens = await login(sim, undefined, BOB.username);

    const [result] = (await getMe(sim, tokens.accessToken)).body.d.results;

    expect(result.UserID).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(result).toMatchObject({ UserName: BOB.username, FullName: BOB.username, CurrentDivision: 123456 });
  });

  it("is reachable in any case of the path, like Exact's", async () => {
    const tokens = await login(sim);

    const response = await fetch(`${sim.url}/api/v1/current/me?$select=CurrentDivision`, {
      headers: { Authorization: `bearer ${tokens.accessToken}` },
    });

    expect(response.status).toBe(200);
  });

  it.each([
    ["no Authorization header", undefined],
    ["an unknown token", "simAT!not!issued"],
    ["another scheme", "Basic YWxpY2U6cHc="],
  ])("answers 401 for %s", async (_case, authorization) => {
    await login(sim);

    const response = await fetch(`${sim.url}/api/v1/current/Me`, {
      headers: authorization === undefined ? {} : { Authorization: authorization },
    });

    expect(response.status).toBe(401);
    expect(await response.json()).toEqual(UNAUTHORIZED);
  });

  it("accepts an access token until access-ttl has passed since it was issued, then answers 401", async () => {
    const tokens = await login(sim);
    sim.advanceClock(599);
    expect((await getMe(sim, tokens.accessToken)).status).toBe(200);

    sim.advanceClock(1);
    const response = await getMe(sim, tokens.accessToken);

    expect(response.status).toBe(401);
    expect(response.body).toEqual(UNAUTHORIZED);
  });

  it("keeps an old access token valid after a refresh until it expires (default variant)", async () => {
    const tokens = await login(sim);
    sim.advanceClock(570);
    const refreshed = await refresh(sim, tokens.refreshToken);

    expect((await getMe(sim, tokens.accessToken)).status).toBe(200);
    expect((await getMe(sim, refreshed.body.access_token)).status).toBe(200);
    sim.advanceClock(30);
    expect((await getMe(sim, tokens.accessToken)).status).toBe(401);
    expect((await getMe(sim, refreshed.body.access_token)).status).toBe(200);
  });

  it("honours accessTtlSeconds", async () => {
    const shortLived = await startTestSimulator({ accessTtlSeconds: 20 });
    try {
      const tokens = await login(shortLived);
      shortLived.advanceClock(19);
      expect((await getMe(shortLived, tokens.accessToken)).status).toBe(200);
      shortLived.advanceClock(1);

      expect((await getMe(shortLived, tokens.accessToken)).status).toBe(401);
    } finally {
      await shortLived.close();
    }
  });
});
