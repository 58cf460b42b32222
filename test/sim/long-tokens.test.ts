import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ValidationError } from "../../lib/errors.js";
import { parseCliArgs } from "../../lib/sim/cli-args.js";
import { type Simulator, startSimulator } from "../../lib/sim/server.js";
import { ISSUED_SECRET_PATTERN } from "../../lib/sim/tokens.js";
import {
  generationOf,
  getMe,
  login,
  rawRequest,
  refresh,
  refreshGrant,
  START_MS,
  startTestSimulator,
} from "./helpers.js";

/** A form body written by hand, the way a client that forgets to encode would send it. */
function rawForm(params: Record<string, string>): string {
  return Object.entries(params)
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
}

async function postRawForm(sim: Simulator, body: string): Promise<{ status: number; body: string }> {
  return rawRequest(`${sim.url}/api/oauth2/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body,
  });
}

describe("token style", () => {
  describe("long (tokenStyle: long)", () => {
    let sim: Simulator;

    beforeAll(async () => {
      sim = await startTestSimulator({ tokenStyle: "long" });
    });
    afterAll(() => sim.close());
    beforeEach(() => sim.reset());

    it("issues tokens as long as Exact's, with + / = and ! in them", async () => {
      const tokens = await login(sim);
      sim.advanceClock(570);
      const refreshed = (await refresh(sim, tokens.refreshToken)).body;

      for (const accessToken of [tokens.accessToken, refreshed.access_token]) {
        expect(accessToken.length).toBeGreaterThanOrEqual(1400);
        expect(accessToken.length).toBeLessThanOrEqual(1600);
        expect(accessToken).toMatch(/^simAT!/);
      }
      for (const refreshToken of [tokens.refreshToken, refreshed.refresh_token]) {
        expect(refreshToken.length).toBeGreaterThanOrEqual(850);
        expect(refreshToken.length).toBeLessThanOrEqual(950);
        expect(refreshToken).toMatch(/^simRT!/);
      }
      for (const token of [tokens.accessToken, tokens.refreshToken]) {
        for (const char of ["+", "/", "=", "!"]) expect(token).toContain(char);
        // `=` padding inside the token too, not only at its end.
        expect(token).toMatch(/=!/);
        expect(token).toMatch(ISSUED_SECRET_PATTERN);
      }
    });

    it("accepts a refresh token only exactly as issued; refused variants leave it usable", async () => {
      const { refreshToken } = await login(sim);
      sim.advanceClock(570);
      const variants = {
        "+ sent unencoded (a form decodes it to a space)": rawForm(refreshGrant(refreshToken)),
        "the trailing = dropped": new URLSearchParams(refreshGrant(refreshToken.slice(0, -1))).toString(),
        "cut to a 255-character column": new URLSearchParams(
          refreshGrant(refreshToken.slice(0, 255)),
        ).toString(),
        "one character changed": new URLSearchParams(
          refreshGrant(
            `${refreshToken.slice(0, 100)}${refreshToken[100] === "A" ? "B" : "A"}${refreshToken.slice(101)}`,
          ),
        ).toString(),
        "! sent as %21 and the rest encoded": new URLSearchParams(refreshGrant(refreshToken)).toString(),
      };

      const statuses = [];
      for (const [name, body] of Object.entries(variants)) {
        statuses.push([name, (await postRawForm(sim, body)).status]);
      }

      expect(statuses).toEqual([
        ["+ sent unencoded (a form decodes it to a space)", 400],
        ["the trailing = dropped", 400],
        ["cut to a 255-character column", 400],
        ["one character changed", 400],
        ["! sent as %21 and the rest encoded", 200],
      ]);
      expect(generationOf(sim)).toBe(2);
    });

    it("accepts an access token at /current/Me only exactly as issued", async () => {
      const { accessToken } = await login(sim);

      const exact = await getMe(sim, accessToken);
      const cut = await getMe(sim, accessToken.slice(0, 1024));
      const unpadded = await getMe(sim, accessToken.replace(/=+$/, ""));
      const spaced = await getMe(sim, accessToken.replace(/\+/g, " "));

      expect(exact.status).toBe(200);
      expect([cut.status, unpadded.status, spaced.status]).toEqual([401, 401, 401]);
    });
  });

  it("is short by default: base64url segments of about 330 and 220 characters", async () => {
    const sim = await startTestSimulator();
    try {
      const tokens = await login(sim);
      expect(tokens.accessToken.length).toBeLessThan(400);
      expect(tokens.refreshToken.length).toBeLessThan(300);
      expect(`${tokens.accessToken}${tokens.refreshToken}`).toMatch(/^[A-Za-z0-9_!-]+$/);
    } finally {
      await sim.close();
    }
  });

  it("refuses an unknown style, as an option and as a flag", async () => {
    await expect(
      startSimulator({ now: () => START_MS, tokenStyle: "huge" as unknown as "long" }),
    ).rejects.toThrow(ValidationError);
    expect(parseCliArgs(["--token-style", "long"])).toMatchObject({ tokenStyle: "long" });
    expect(() => parseCliArgs(["--token-style", "huge"])).toThrow(/--token-style must be "short" or "long"/);
  });
});
