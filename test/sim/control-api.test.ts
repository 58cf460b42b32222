import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import {
  ALICE,
  APP,
  control,
  getApi,
  getMe,
  login,
  postForm,
  START_MS,
  startTestSimulator,
} from "./helpers.js";

const NEW_APP = {
  clientId: "new-app",
  clientSecret: "new-secret",
  redirectUris: ["http://localhost:9000/cb"],
};
const NEW_USER = { username: "carol", password: "carol-pw", totpSecret: "GEZDGNBVGY3TQOJQ" };

describe("control API /_sim/", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  function expectBadRequest(response: { status: number; body: unknown }, message: RegExp): void {
    expect(response.status).toBe(400);
    expect(response.body).toEqual({ error: "bad_request", message: expect.stringMatching(message) });
  }

  describe("POST /_sim/apps", () => {
    it("registers an app whose credentials then work on the token endpoint", async () => {
      const created = await control(sim, "POST", "/_sim/apps", NEW_APP);
      await control(sim, "POST", "/_sim/users", NEW_USER);
      const { body } = await control(sim, "POST", "/_sim/authorize", {
        clientId: NEW_APP.clientId,
        username: NEW_USER.username,
        redirectUri: NEW_APP.redirectUris[0],
      });

      const exchanged = await postForm(sim, {
        grant_type: "authorization_code",
        code: body.code,
        redirect_uri: NEW_APP.redirectUris[0] ?? "",
        client_id: NEW_APP.clientId,
        client_secret: NEW_APP.clientSecret,
      });

      expect(created.status).toBe(201);
      expect(created.body).toEqual({ clientId: NEW_APP.clientId, redirectUris: NEW_APP.redirectUris });
      expect(exchanged.status).toBe(200);
    });

    it.each([
      ["a duplicate client ID", APP, /already exists/],
      ["no clientSecret", { clientId: "x", redirectUris: ["https://x.example/cb"] }, /clientSecret/],
      ["an empty redirectUris", { ...NEW_APP, redirectUris: [] }, /redirectUris/],
      ["a relative redirect URI", { ...NEW_APP, redirectUris: ["/cb"] }, /redirectUris/],
      ["an unknown field", { ...NEW_APP, secret: "typo" }, /unknown field\(s\) "secret"/],
      ["an array body", [NEW_APP], /must be a JSON object/],
      ["no body", undefined, /must be a JSON object/],
    ])("answers 400 for %s", async (_case, body, message) => {
      expectBadRequest(await control(sim, "POST", "/_sim/apps", body), message);
    });
  });

  describe("POST /_sim/users", () => {
    it("creates a user and answers it without password or TOTP secret", async () => {
      const response = await control(sim, "POST", "/_sim/users", {
        ...NEW_USER,
        division: 777,
        fullName: "Carol",
      });

      expect(response.status).toBe(201);
      expect(response.body).toEqual({
        userId: expect.stringMatching(/^[0-9a-f-]{36}$/),
        username: "carol",
        fullName: "Carol",
        division: 777,
        divisions: [777],
        email: "carol@example.com",
      });
    });

    it.each([
      ["both given", { division: 20, divisions: [30, 10, 20] }, { division: 20, divisions: [10, 20, 30] }],
      [
        "divisions alone: the first is current",
        { divisions: [30, 10] },
        { division: 30, divisions: [10, 30] },
      ],
      ["neither", {}, { division: 123456, divisions: [123456] }],
    ])(
      "takes the divisions a user can open, sorted, with the current one among them: %s",
      async (_case, extra, expected) => {
        const response = await control(sim, "POST", "/_sim/users", { ...NEW_USER, ...extra });

        expect(response.status).toBe(201);
        expect(response.body).toMatchObject(expected);
      },
    );

    it.each([
      ["a duplicate username", { ...NEW_USER, username: ALICE.username }, /already exists/],
      ["a duplicate userId", { ...NEW_USER, userId: ALICE.userId }, /userId .* already exists/],
      ["a userId that is no GUID", { ...NEW_USER, userId: "42" }, /GUID/],
      ["a TOTP secret that is no base32", { ...NEW_USER, totpSecret: "not base32!" }, /base32/],
      ["a division that is no integer", { ...NEW_USER, division: 1.5 }, /division/],
      ["empty divisions", { ...NEW_USER, divisions: [] }, /"divisions" must be a non-empty array/],
      ["divisions that are no list", { ...NEW_USER, divisions: 5 }, /"divisions" must be a non-empty array/],
      ["a division in the list that is no integer", { ...NEW_USER, divisions: [1, "2"] }, /"divisions"\[1\]/],
      ["a division listed twice", { ...NEW_USER, divisions: [1, 1] }, /lists a division twice/],
      [
        "a current division not in the list",
        { ...NEW_USER, division: 3, divisions: [1, 2] },
        /must include "division"/,
      ],
      ["no password", { username: "dave", totpSecret: "GEZDGNBV" }, /password/],
    ])("answers 400 for %s", async (_case, body, message) => {
      expectBadRequest(await control(sim, "POST", "/_sim/users", body), message);
    });
  });

  describe("POST /_sim/authorize", () => {
    it("answers a code carrying the simAC! marker", async () => {
      const response = await control(sim, "POST", "/_sim/authorize", {
        clientId: APP.clientId,
        username: ALICE.username,
        redirectUri: APP.redirectUris[0],
      });

      expect(response.status).toBe(200);
      expect(response.body.code).toMatch(/^simAC![A-Za-z0-9_-]+!/);
    });

    it.each([
      [
        "an unknown client",
        { clientId: "nope", username: ALICE.username, redirectUri: APP.redirectUris[0] },
        /clientId/,
      ],
      [
        "an unknown user",
        { clientId: APP.clientId, username: "nobody", redirectUri: APP.redirectUris[0] },
        /username/,
      ],
      [
        "an unregistered redirect URI",
        { clientId: APP.clientId, username: ALICE.username, redirectUri: "https://evil.example/" },
        /redirectUri/,
      ],
      ["a missing field", { clientId: APP.clientId, username: ALICE.username }, /redirectUri/],
    ])("answers 400 for %s", async (_case, body, message) => {
      expectBadRequest(await control(sim, "POST", "/_sim/authorize", body), message);
    });
  });

  describe("/_sim/clock", () => {
    it("advances sim time by fractional seconds and answers the new time", async () => {
      const response = await control(sim, "POST", "/_sim/clock", { advanceSeconds: 90.5 });

      expect(response.body).toEqual({ now: new Date(START_MS + 90_500).toISOString() });
      expect(sim.nowMs()).toBe(START_MS + 90_500);
      expect((await control(sim, "GET", "/_sim/clock")).body).toEqual(response.body);
    });

    it.each([
      ["a negative step", { advanceSeconds: -1 }, /advanceSeconds/],
      ["a string", { advanceSeconds: "10" }, /advanceSeconds/],
      ["no step", {}, /advanceSeconds/],
      ["a misspelt field", { advanceSecond: 1 }, /unknown field/],
    ])("answers 400 for %s and leaves the clock alone", async (_case, body, message) => {
      expectBadRequest(await control(sim, "POST", "/_sim/clock", body), message);
      expect(sim.nowMs()).toBe(START_MS);
    });
  });

  describe("POST /_sim/variants", () => {
    it.each([
      ["an unknown variant", { tooLate: true }, /unknown field/],
      ["a non-boolean", { tooEarlyAs401: "yes" }, /tooEarlyAs401/],
      ["a non-boolean dailyTokenCap", { dailyTokenCap: 200 }, /"dailyTokenCap" must be true or false/],
      ["a cap of 0", { dailyTokenCapPerDay: 0 }, /"dailyTokenCapPerDay" must be an integer from 1/],
      ["a cap that is no integer", { dailyTokenCapPerDay: 2.5 }, /"dailyTokenCapPerDay"/],
    ])("answers 400 for %s", async (_case, body, message) => {
      expectBadRequest(await control(sim, "POST", "/_sim/variants", body), message);
    });
  });

  describe("POST /_sim/faults", () => {
    it.each([
      ["no kind", { count: 1 }, /kind/],
      ["an unknown kind", { kind: "explode" }, /kind/],
      ["latency without latencyMs", { kind: "latency" }, /latencyMs/],
      ["a status other than 500 or 503", { kind: "status", status: 404 }, /500 or 503/],
      ["count and probability together", { kind: "reset", count: 1, probability: 0.5 }, /not both/],
      ["a seed without probability", { kind: "reset", seed: 3 }, /seed/],
      ["a probability above 1", { kind: "reset", probability: 1.5 }, /probability/],
      ["a count of 0", { kind: "reset", count: 0 }, /count/],
      ["an unknown endpoint", { kind: "reset", endpoint: "auth" }, /endpoint/],
      ["a field of another kind", { kind: "reset", latencyMs: 5 }, /unknown field/],
      ["refuse without durationMs", { kind: "refuse" }, /durationMs/],
      ["refuse per client", { kind: "refuse", durationMs: 100, clientId: APP.clientId }, /whole-port/],
    ])("answers 400 for %s", async (_case, body, message) => {
      expectBadRequest(await control(sim, "POST", "/_sim/faults", body), message);
      expect((await control(sim, "GET", "/_sim/faults")).body).toEqual({ faults: [] });
    });
  });

  describe("GET /_sim/stats", () => {
    it("keys chains clientId/username and counts requests without a known user in the totals only", async () => {
      const tokens = await login(sim);
      await getMe(sim, tokens.accessToken);
      await getMe(sim, "simAT!unknown!token");

      const { body } = await control(sim, "GET", "/_sim/stats");

      expect(Object.keys(body.chains)).toEqual([`${APP.clientId}/${ALICE.username}`]);
      expect(body.chains[`${APP.clientId}/${ALICE.username}`]).toMatchObject({
        generation: 1,
        chainsStarted: 1,
        tokenRequests: { issued: 1, code_exchanged: 1, refreshed: 0, too_early: 0 },
        meRequests: { ok: 1, unauthorized: 0 },
      });
      expect(body.totals).toMatchObject({
        chainsStarted: 1,
        tokenRequests: { issued: 1 },
        meRequests: { ok: 1, unauthorized: 1 },
      });
    });
  });

  describe("POST /_sim/reset", () => {
    it("forgets chains, stats, faults and clock shifts but keeps the configured apps and users", async () => {
      const tokens = await login(sim);
      sim.addFault({ kind: "status", count: 5 });
      sim.advanceClock(1000);

      const response = await control(sim, "POST", "/_sim/reset");

      expect(response.body).toEqual({ reset: true });
      expect(sim.nowMs()).toBe(START_MS);
      expect(sim.stats()).toMatchObject({ chains: {}, totals: { chainsStarted: 0 } });
      expect((await getMe(sim, tokens.accessToken)).status).toBe(401);
      expect((await login(sim)).accessToken).toMatch(/^simAT!/);
    });

    it("forgets the API budgets used, the day's token calls and the API stats", async () => {
      const tight = await startTestSimulator({
        apiCallsPerMinute: 1,
        variants: { dailyTokenCap: true, dailyTokenCapPerDay: 1 },
      });
      try {
        const accounts = `/api/v1/${ALICE.division}/crm/Accounts`;
        await getApi(tight, accounts, (await login(tight)).accessToken);

        await control(tight, "POST", "/_sim/reset");

        expect(tight.stats().api).toEqual({});
        expect((await getApi(tight, accounts, (await login(tight)).accessToken)).status).toBe(200);
      } finally {
        await tight.close();
      }
    });
  });

  describe("routing", () => {
    it.each([
      ["GET", "/_sim/nothing"],
      ["DELETE", "/_sim/stats"],
      ["GET", "/signin-azureb2c"],
      ["PUT", "/api/oauth2/auth?client_id=x&response_type=code"],
      ["GET", "/api/oauth2/token"],
      ["GET", "/"],
    ])("answers 404 not_found for %s %s", async (method, path) => {
      const response = await control(sim, method, path);

      expect(response.status).toBe(404);
      expect(response.body).toEqual({ error: "not_found" });
    });

    it("answers 400 for a body that is not JSON", async () => {
      const response = await fetch(`${sim.url}/_sim/apps`, { method: "POST", body: "{clientId:" });

      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({ error: "bad_request", message: "body is not valid JSON" });
    });

    it("answers 400 for a body over 16 KiB", async () => {
      const response = await control(sim, "POST", "/_sim/apps", {
        ...NEW_APP,
        padding: "x".repeat(17 * 1024),
      });

      expectBadRequest(response, /too large/);
    });
  });
});
