import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import {
  ALICE,
  APP,
  BOB,
  codeGrant,
  generationOf,
  getMe,
  login,
  OTHER_APP,
  postForm,
  refresh,
  refreshGrant,
  startTestSimulator,
} from "./helpers.js";

const REFRESH_AFTER_SECONDS = 570;
const OLD_TOKEN = { error: "unauthorized_client", error_description: "Old refresh token used." };

describe("POST /api/oauth2/token", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  function authorize(app = APP, username = ALICE.username): string {
    return sim.authorize({ clientId: app.clientId, username, redirectUri: app.redirectUris[0] ?? "" });
  }

  describe("authorization_code grant (rule 1)", () => {
    it("answers Exact's token body with expires_in as a string and long tokens containing '!'", async () => {
      const response = await postForm(sim, codeGrant(authorize()));

      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^application\/json/);
      expect(Object.keys(response.body).sort()).toEqual([
        "access_token",
        "expires_in",
        "refresh_token",
        "token_type",
      ]);
      expect(response.body.token_type).toBe("bearer");
      expect(response.body.expires_in).toBe("600");
      expect(response.body.access_token).toMatch(/^simAT!.*!/);
      expect(response.body.access_token.length).toBeGreaterThanOrEqual(300);
      expect(response.body.refresh_token).toMatch(/^simRT!.*!/);
      expect(response.body.refresh_token.length).toBeGreaterThanOrEqual(200);
    });

    it("accepts the code with '!' sent raw or URL-encoded as %21", async () => {
      const { redirect_uri, client_id, client_secret } = codeGrant("unused");
      const tail = `&redirect_uri=${encodeURIComponent(redirect_uri ?? "")}&client_id=${client_id}&client_secret=${client_secret}`;
      const send = (encodedCode: string) =>
        fetch(`${sim.url}/api/oauth2/token`, {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded; charset=utf-8" },
          body: `grant_type=authorization_code&code=${encodedCode}${tail}`,
        });
      const rawCode = authorize();
      const encodedCode = authorize().replaceAll("!", "%21");

      expect(rawCode).toContain("!");
      expect((await send(rawCode)).status).toBe(200);
      expect(encodedCode).toContain("%21");
      expect((await send(encodedCode)).status).toBe(200);
    });

    it("refuses a code the second time", async () => {
      const code = authorize();
      await postForm(sim, codeGrant(code));

      const second = await postForm(sim, codeGrant(code));

      expect(second.status).toBe(400);
      expect(second.body.error).toBe("invalid_grant");
      expect(sim.stats().chains[`${APP.clientId}/${ALICE.username}`]?.chainsStarted).toBe(1);
    });

    it("accepts a code until 3 minutes have passed and refuses it after", async () => {
      const young = authorize();
      const old = authorize();
      sim.advanceClock(179);
      expect((await postForm(sim, codeGrant(young))).status).toBe(200);

      sim.advanceClock(1);
      const response = await postForm(sim, codeGrant(old));

      expect(response.status).toBe(400);
      expect(response.body).toEqual({
        error: "invalid_grant",
        error_description: "The authorization code expired.",
      });
    });

    it("refuses a code issued to another client, and leaves it usable by its own", async () => {
      const code = authorize(APP);

      const foreign = await postForm(sim, codeGrant(code, OTHER_APP));

      expect(foreign.status).toBe(400);
      expect(foreign.body.error).toBe("invalid_grant");
      expect((await postForm(sim, codeGrant(code, APP))).status).toBe(200);
    });

    it("refuses a redirect_uri other than the authorization's", async () => {
      const response = await postForm(sim, {
        ...codeGrant(authorize()),
        redirect_uri: "https://broker.example/other",
      });

      expect(response.status).toBe(400);
      expect(response.body.error).toBe("invalid_grant");
    });

    it("needs the client secret and does not use up the code on a wrong one", async () => {
      const code = authorize();

      const wrong = await postForm(sim, { ...codeGrant(code), client_secret: "guess" });

      expect(wrong.status).toBe(401);
      expect(wrong.body.error).toBe("invalid_client");
      expect((await postForm(sim, codeGrant(code))).status).toBe(200);
    });

    it("starts a new chain that makes every earlier refresh token of the same app and user obsolete", async () => {
      const first = await login(sim);
      sim.advanceClock(REFRESH_AFTER_SECONDS);
      const rotated = await refresh(sim, first.refreshToken);
      const bobs = await login(sim, APP, BOB.username);
      const otherApps = await login(sim, OTHER_APP, ALICE.username);

      const second = await login(sim);

      expect(generationOf(sim)).toBe(1);
      expect(sim.stats().chains[`${APP.clientId}/${ALICE.username}`]?.chainsStarted).toBe(2);
      expect((await refresh(sim, rotated.body.refresh_token)).body).toEqual(OLD_TOKEN);
      expect((await refresh(sim, first.refreshToken)).body).toEqual(OLD_TOKEN);
      sim.advanceClock(REFRESH_AFTER_SECONDS);
      expect((await refresh(sim, second.refreshToken)).status).toBe(200);
      expect((await refresh(sim, bobs.refreshToken)).status).toBe(200);
      expect((await refresh(sim, otherApps.refreshToken, OTHER_APP)).status).toBe(200);
    });
  });

  describe("refresh_token grant in the window (rule 2)", () => {
    it("issues new tokens, advances the generation and kills the old refresh token", async () => {
      const tokens = await login(sim);
      sim.advanceClock(REFRESH_AFTER_SECONDS);

      const response = await refresh(sim, tokens.refreshToken);

      expect(response.status).toBe(200);
      expect(response.body.expires_in).toBe("600");
      expect(response.body.refresh_token).not.toBe(tokens.refreshToken);
      expect(response.body.access_token).not.toBe(tokens.accessToken);
      expect(generationOf(sim)).toBe(2);
      const again = await refresh(sim, tokens.refreshToken);
      expect(again.status).toBe(401);
      expect(again.body).toEqual(OLD_TOKEN);
      const stats = sim.stats().chains[`${APP.clientId}/${ALICE.username}`]?.tokenRequests;
      expect(stats).toMatchObject({ issued: 2, code_exchanged: 1, refreshed: 1, old_token: 1 });
    });
  });

  describe("too early (rule 3)", () => {
    it("refuses a refresh before refresh-after with 400 access_denied and the Reason header", async () => {
      const tokens = await login(sim);
      sim.advanceClock(REFRESH_AFTER_SECONDS - 1);

      const response = await refresh(sim, tokens.refreshToken);

      expect(response.status).toBe(400);
      expect(response.body).toEqual({
        error: "access_denied",
        error_description: "Rate limit exceeded: access_token not expired",
      });
      expect(response.headers.get("reason")).toBe(
        "TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired",
      );
      expect(generationOf(sim)).toBe(1);
    });

    it("keeps the current access and refresh token valid", async () => {
      const tokens = await login(sim);
      await refresh(sim, tokens.refreshToken);

      expect((await getMe(sim, tokens.accessToken)).status).toBe(200);
      sim.advanceClock(REFRESH_AFTER_SECONDS);
      expect((await refresh(sim, tokens.refreshToken)).status).toBe(200);
    });

    it("counts from the last issuance, not from the start of the chain", async () => {
      const tokens = await login(sim);
      sim.advanceClock(REFRESH_AFTER_SECONDS);
      const refreshed = await refresh(sim, tokens.refreshToken);
      sim.advanceClock(REFRESH_AFTER_SECONDS - 1);

      expect((await refresh(sim, refreshed.body.refresh_token)).status).toBe(400);
      sim.advanceClock(1);
      expect((await refresh(sim, refreshed.body.refresh_token)).status).toBe(200);
    });
  });

  describe("old refresh tokens (rule 4)", () => {
    it("answers 401 'Old refresh token used.' for a rotated and for a superseded token, counted apart", async () => {
      const first = await login(sim);
      sim.advanceClock(REFRESH_AFTER_SECONDS);
      await refresh(sim, first.refreshToken);
      const rotated = await refresh(sim, first.refreshToken);
      const second = await login(sim);
      sim.advanceClock(REFRESH_AFTER_SECONDS);
      await refresh(sim, second.refreshToken);
      const third = await login(sim);
      const superseded = await refresh(sim, second.refreshToken);

      expect(third.refreshToken).toMatch(/^simRT!/);
      expect([rotated.status, superseded.status]).toEqual([401, 401]);
      expect(rotated.body).toEqual(OLD_TOKEN);
      expect(superseded.body).toEqual(OLD_TOKEN);
      expect(sim.stats().totals.tokenRequests).toMatchObject({ old_token: 1, superseded: 1 });
    });
  });

  describe("expired refresh tokens (rule 5)", () => {
    it("answers 400 invalid_request with Exact's message and US-format UTC times", async () => {
      const expiring = await startTestSimulator({ now: () => Date.UTC(2021, 9, 4, 14, 50, 46) });
      try {
        const tokens = await login(expiring);
        expiring.advanceClock((Date.UTC(2022, 6, 31, 19, 45, 12) - Date.UTC(2021, 9, 4, 14, 50, 46)) / 1000);

        const response = await refresh(expiring, tokens.refreshToken);

        expect(response.status).toBe(400);
        expect(response.body).toEqual({
          error: "invalid_request",
          error_description:
            "The refresh token expired at 11/3/2021 2:50:46 PM and it is now 7/31/2022 7:45:12 PM.",
        });
        expect(expiring.stats().totals.tokenRequests.expired).toBe(1);
      } finally {
        await expiring.close();
      }
    });

    it("honours refreshTtlDays and keeps the token valid until its last second", async () => {
      const shortLived = await startTestSimulator({ refreshTtlDays: 1 });
      try {
        const first = await login(shortLived);
        const second = await login(shortLived, OTHER_APP);
        shortLived.advanceClock(24 * 3600 - 1);
        expect((await refresh(shortLived, first.refreshToken)).status).toBe(200);

        shortLived.advanceClock(1);
        const response = await refresh(shortLived, second.refreshToken, OTHER_APP);

        expect(response.status).toBe(400);
        expect(response.body.error_description).toMatch(
          /^The refresh token expired at 1\/6\/2026 10:00:00 AM/,
        );
      } finally {
        await shortLived.close();
      }
    });
  });

  describe("bad input (rule 6)", () => {
    it.each([
      ["an unknown client", { client_id: "no-such-client" }, "Unknown client_id."],
      ["a wrong secret", { client_secret: "wrong" }, "Invalid client_secret."],
    ])("answers 401 invalid_client for %s", async (_case, override, description) => {
      const tokens = await login(sim);

      const response = await postForm(sim, { ...refreshGrant(tokens.refreshToken), ...override });

      expect(response.status).toBe(401);
      expect(response.body).toEqual({ error: "invalid_client", error_description: description });
    });

    it.each([
      ["no grant_type", { grant_type: undefined }, "Missing parameter: grant_type."],
      ["an unsupported grant_type", { grant_type: "password" }, "Unsupported grant_type."],
      ["no refresh_token", { refresh_token: undefined }, "Missing parameter: refresh_token."],
      ["an empty refresh_token", { refresh_token: "" }, "Missing parameter: refresh_token."],
      ["no client_id", { client_id: undefined }, "Missing parameter: client_id."],
      ["no client_secret", { client_secret: undefined }, "Missing parameter: client_secret."],
    ])("answers 400 invalid_request for %s", async (_case, override, description) => {
      const params = Object.fromEntries(
        Object.entries({ ...refreshGrant("simRT!whatever"), ...override }).filter(
          ([, value]) => value !== undefined,
        ),
      ) as Record<string, string>;

      const response = await postForm(sim, params);

      expect(response.status).toBe(400);
      expect(response.body).toEqual({ error: "invalid_request", error_description: description });
    });

    it("answers 400 invalid_request for missing code grant parameters", async () => {
      const { redirect_uri: _dropped, ...params } = codeGrant(authorize());

      const response = await postForm(sim, params);

      expect(response.status).toBe(400);
      expect(response.body.error_description).toBe("Missing parameter: redirect_uri.");
    });

    it("answers 400 invalid_request for a parameter given twice", async () => {
      const body = `${new URLSearchParams(refreshGrant("simRT!x"))}&client_id=${OTHER_APP.clientId}`;

      const response = await fetch(`${sim.url}/api/oauth2/token`, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body,
      });

      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({
        error: "invalid_request",
        error_description: "Parameter client_id given more than once.",
      });
    });

    it.each([
      ["JSON", "application/json", JSON.stringify(refreshGrant("simRT!x"))],
      ["no content type", undefined, new URLSearchParams(refreshGrant("simRT!x")).toString()],
    ])("answers 400 invalid_request for a %s body", async (_case, contentType, body) => {
      const response = await fetch(`${sim.url}/api/oauth2/token`, {
        method: "POST",
        headers: contentType === undefined ? {} : { "Content-Type": contentType },
        body: Buffer.from(body),
      });

      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({
        error: "invalid_request",
        error_description: "Content-Type must be application/x-www-form-urlencoded.",
      });
    });

    it("answers 400 invalid_request for a body over 16 KiB", async () => {
      const response = await postForm(sim, { ...refreshGrant("simRT!x"), padding: "x".repeat(17 * 1024) });

      expect(response.status).toBe(400);
      expect(response.body).toEqual({
        error: "invalid_request",
        error_description: "The request body is too large.",
      });
    });

    it("answers 400 invalid_grant for an unknown refresh token, an unknown code and a foreign refresh token", async () => {
      const othersToken = (await login(sim, OTHER_APP)).refreshToken;

      const responses = [
        await refresh(sim, "simRT!garbage!garbage"),
        await postForm(sim, codeGrant("simAC!not-a-code")),
        await refresh(sim, othersToken, APP),
      ];

      expect(responses.map((response) => [response.status, response.body.error])).toEqual([
        [400, "invalid_grant"],
        [400, "invalid_grant"],
        [400, "invalid_grant"],
      ]);
    });

    it("never answers 5xx to garbage", async () => {
      const bodies: [string | undefined, Buffer | string][] = [
        ["application/x-www-form-urlencoded", "%zz%%%&&&==="],
        ["application/x-www-form-urlencoded", Buffer.from([0xff, 0xfe, 0x00, 0x80])],
        ["application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=%00&client_id=%ff"],
        ["application/x-www-form-urlencoded", "grant_type=authorization_code&code=&redirect_uri=::"],
        ["application/x-www-form-urlencoded;;;charset", "grant_type"],
        ["text/plain", ""],
        [undefined, ""],
        ["multipart/form-data; boundary=x", "--x\r\n\r\n--x--"],
      ];

      for (const [contentType, body] of bodies) {
        const response = await fetch(`${sim.url}/api/oauth2/token`, {
          method: "POST",
          headers: contentType === undefined ? {} : { "Content-Type": contentType },
          body,
        });
        expect(response.status, String(body)).toBeLessThan(500);
        expect(response.status, String(body)).toBeGreaterThanOrEqual(400);
      }
    });
  });
});
