import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import {
  ALICE,
  APP,
  getApi,
  type JsonResponse,
  login,
  OTHER_APP,
  START_MS,
  startTestSimulator,
} from "./helpers.js";

const ACCOUNTS = `/api/v1/${ALICE.division}/crm/Accounts`;
const KEY = `${APP.clientId}/${ALICE.division}`;
const DAY_END_MS = Date.UTC(2026, 0, 6);
const CAROL = {
  username: "carol@example.com",
  password: "carol-password",
  totpSecret: "GEZDGNBVGY3TQOJQ",
  division: ALICE.division,
  divisions: [ALICE.division, 777],
};

function rateLimitHeaders(response: JsonResponse): Record<string, string> {
  return Object.fromEntries([...response.headers].filter(([name]) => name.startsWith("x-ratelimit")));
}

async function calls(sim: Simulator, times: number, accessToken: string, path = ACCOUNTS): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < times; i++) {
    statuses.push((await getApi(sim, path, accessToken)).status);
  }
  return statuses;
}

describe("API rate limits", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator({ apiCallsPerMinute: 3, apiCallsPerDay: 5 });
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  it("sends the daily and minutely budgets left, with resets in epoch milliseconds", async () => {
    const tokens = await login(sim);

    const response = await getApi(sim, ACCOUNTS, tokens.accessToken);

    expect(rateLimitHeaders(response)).toEqual({
      "x-ratelimit-limit": "5",
      "x-ratelimit-remaining": "4",
      "x-ratelimit-reset": String(DAY_END_MS),
      "x-ratelimit-minutely-limit": "3",
      "x-ratelimit-minutely-remaining": "2",
      "x-ratelimit-minutely-reset": String(START_MS + 60_000),
    });
  });

  it("answers 429 with only the minutely headers once the minute's calls are gone, until the clock minute ends", async () => {
    const tokens = await login(sim);
    sim.advanceClock(30);
    const served = await calls(sim, 3, tokens.accessToken);

    const refused = await getApi(sim, ACCOUNTS, tokens.accessToken);
    sim.advanceClock(29);
    const stillRefused = await getApi(sim, ACCOUNTS, tokens.accessToken);
    sim.advanceClock(1);
    const nextMinute = await getApi(sim, ACCOUNTS, tokens.accessToken);

    expect(served).toEqual([200, 200, 200]);
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({
      error: {
        code: "",
        message: { lang: "", value: "API rate limit exceeded: too many requests for this app and division" },
      },
    });
    expect(rateLimitHeaders(refused)).toEqual({
      "x-ratelimit-minutely-limit": "3",
      "x-ratelimit-minutely-remaining": "0",
      "x-ratelimit-minutely-reset": String(START_MS + 60_000),
    });
    expect(stillRefused.status).toBe(429);
    expect(nextMinute.status).toBe(200);
    expect(rateLimitHeaders(nextMinute)).toMatchObject({
      "x-ratelimit-remaining": "1",
      "x-ratelimit-minutely-remaining": "2",
      "x-ratelimit-minutely-reset": String(START_MS + 120_000),
    });
    expect(sim.stats().api[KEY]).toMatchObject({ ok: 4, minutely_limited: 2, daily_limited: 0 });
  });

  it("answers 429 with the daily headers once the day's calls are gone, until midnight UTC of sim time", async () => {
    const tokens = await login(sim);
    await calls(sim, 3, tokens.accessToken);
    sim.advanceClock(60);
    await calls(sim, 2, tokens.accessToken);

    const refused = await getApi(sim, ACCOUNTS, tokens.accessToken);
    sim.advanceClock((DAY_END_MS - sim.nowMs()) / 1000 - 1);
    const lastSecond = await getApi(sim, ACCOUNTS, (await login(sim)).accessToken);
    sim.advanceClock(1);
    const nextDay = await getApi(sim, ACCOUNTS, (await login(sim)).accessToken);

    expect(refused.status).toBe(429);
    expect(rateLimitHeaders(refused)).toEqual({
      "x-ratelimit-limit": "5",
      "x-ratelimit-remaining": "0",
      "x-ratelimit-reset": String(DAY_END_MS),
      "x-ratelimit-minutely-limit": "3",
      "x-ratelimit-minutely-remaining": "1",
      "x-ratelimit-minutely-reset": String(START_MS + 120_000),
    });
    expect(lastSecond.status).toBe(429);
    expect(nextDay.status).toBe(200);
    expect(nextDay.headers.get("x-ratelimit-remaining")).toBe("4");
    expect(sim.stats().api[KEY]).toMatchObject({ ok: 6, daily_limited: 2 });
  });

  it("keeps one budget per app and division, shared by the app's users", async () => {
    sim.addUser(CAROL);
    const alice = await login(sim);
    const carol = await login(sim, APP, CAROL.username);
    const aliceElsewhere = await login(sim, OTHER_APP);
    await calls(sim, 3, alice.accessToken);

    const carolSameDivision = await getApi(sim, ACCOUNTS, carol.accessToken);
    const carolOtherDivision = await getApi(sim, "/api/v1/777/crm/Accounts", carol.accessToken);
    const otherApp = await getApi(
      sim,
      `/api/v1/${ALICE.division}/system/Divisions`,
      aliceElsewhere.accessToken,
    );

    expect(carolSameDivision.status).toBe(429);
    expect(carolOtherDivision.status).toBe(200);
    expect(otherApp.status).toBe(200);
  });

  it("uses Exact's 60 a minute and 5,000 a day by default", async () => {
    const standard = await startTestSimulator();
    try {
      const tokens = await login(standard);
      const statuses = await calls(standard, 61, tokens.accessToken);
      const last = await getApi(standard, ACCOUNTS, tokens.accessToken);

      expect(statuses.slice(0, 60)).toEqual(Array(60).fill(200));
      expect(statuses[60]).toBe(429);
      expect(rateLimitHeaders(last)["x-ratelimit-minutely-limit"]).toBe("60");
      standard.advanceClock(60);
      expect(rateLimitHeaders(await getApi(standard, ACCOUNTS, tokens.accessToken))).toMatchObject({
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4939",
      });
    } finally {
      await standard.close();
    }
  });
});
