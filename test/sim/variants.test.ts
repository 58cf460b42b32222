import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import { DEFAULT_VARIANTS } from "../../lib/sim/variants.js";
import { control, generationOf, getMe, login, refresh, startTestSimulator } from "./helpers.js";

const OLD_TOKEN = { error: "unauthorized_client", error_description: "Old refresh token used." };
const OBSOLETED = {
  error: "invalid_request",
  error_description: "An obsoleted refresh token can not be used.",
};
const CHAIN_ID = {
  error: "invalid_grant",
  error_description: "Token is not allowed, because of invalid or empty chainId",
};
const TOO_EARLY = {
  error: "access_denied",
  error_description: "Rate limit exceeded: access_token not expired",
};

describe("variants (rule 10)", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  /** A rotated-away token and a token of a superseded chain, plus the live chain's tokens. */
  async function oldAndSuperseded(): Promise<{ rotated: string; superseded: string }> {
    const first = await login(sim);
    sim.advanceClock(570);
    const superseded = (await refresh(sim, first.refreshToken)).body.refresh_token;
    const second = await login(sim);
    sim.advanceClock(570);
    await refresh(sim, second.refreshToken);
    return { rotated: second.refreshToken, superseded };
  }

  it("sets variants at runtime with POST /_sim/variants and answers all of them", async () => {
    const response = await control(sim, "POST", "/_sim/variants", { tooEarlyAs401: true });

    expect(response.status).toBe(200);
    expect(response.body).toEqual({ ...DEFAULT_VARIANTS, tooEarlyAs401: true });
    expect((await control(sim, "GET", "/_sim/variants")).body).toEqual(response.body);
  });

  it("takes start variants from the options, and reset returns to them", async () => {
    const configured = await startTestSimulator({ variants: { oldTokenAs400Obsoleted: true } });
    try {
      configured.setVariants({ oldTokenAs400Obsoleted: false });
      configured.reset();
      const tokens = await login(configured);
      configured.advanceClock(570);
      await refresh(configured, tokens.refreshToken);

      expect((await refresh(configured, tokens.refreshToken)).body).toEqual(OBSOLETED);
    } finally {
      await configured.close();
    }
  });

  it("oldTokenAs400Obsoleted: rotated and superseded tokens get 400 'obsoleted' instead of 401", async () => {
    const { rotated, superseded } = await oldAndSuperseded();
    sim.setVariants({ oldTokenAs400Obsoleted: true });

    const answers = [await refresh(sim, rotated), await refresh(sim, superseded)];

    expect(answers.map((answer) => [answer.status, answer.body])).toEqual([
      [400, OBSOLETED],
      [400, OBSOLETED],
    ]);
  });

  it("tooEarlyAs401: a too-early refresh gets 401 with the same body and Reason header", async () => {
    const tokens = await login(sim);
    sim.setVariants({ tooEarlyAs401: true });

    const response = await refresh(sim, tokens.refreshToken);

    expect(response.status).toBe(401);
    expect(response.body).toEqual(TOO_EARLY);
    expect(response.headers.get("reason")).toBe(`TooEarlyToRefreshTokens: ${TOO_EARLY.error_description}`);
  });

  it("tooEarlyCarriesRefreshToken: the refusal carries a new refresh token and the chain rotates to it", async () => {
    const tokens = await login(sim);
    sim.setVariants({ tooEarlyCarriesRefreshToken: true });
    sim.advanceClock(100);

    const response = await refresh(sim, tokens.refreshToken);

    expect(response.status).toBe(400);
    expect(response.headers.get("reason")).toMatch(/^TooEarlyToRefreshTokens/);
    expect(response.body).toMatchObject(TOO_EARLY);
    const carried: string = response.body.refresh_token;
    expect(carried).toMatch(/^simRT!/);
    expect(generationOf(sim)).toBe(2);
    expect((await refresh(sim, tokens.refreshToken)).body).toEqual(OLD_TOKEN);
    expect((await getMe(sim, tokens.accessToken)).status).toBe(200);
    // The too-early timer still counts from the code exchange, not from the carried token.
    sim.advanceClock(470);
    const refreshed = await refresh(sim, carried);
    expect(refreshed.status).toBe(200);
    expect(generationOf(sim)).toBe(3);
  });

  it("supersededAsInvalidGrant: a superseded chain gets invalid_grant chainId, a rotated token still the old-token answer", async () => {
    const { rotated, superseded } = await oldAndSuperseded();
    sim.setVariants({ supersededAsInvalidGrant: true });

    const supersededAnswer = await refresh(sim, superseded);
    const rotatedAnswer = await refresh(sim, rotated);

    expect([supersededAnswer.status, supersededAnswer.body]).toEqual([400, CHAIN_ID]);
    expect([rotatedAnswer.status, rotatedAnswer.body]).toEqual([401, OLD_TOKEN]);
  });

  it("oldAccessTokenValidAfterRefresh off: a refresh and a new authorization revoke older access tokens", async () => {
    sim.setVariants({ oldAccessTokenValidAfterRefresh: false });
    const first = await login(sim);
    sim.advanceClock(570);
    const refreshed = await refresh(sim, first.refreshToken);

    expect((await getMe(sim, first.accessToken)).status).toBe(401);
    expect((await getMe(sim, refreshed.body.access_token)).status).toBe(200);

    const second = await login(sim);

    expect((await getMe(sim, refreshed.body.access_token)).status).toBe(401);
    expect((await getMe(sim, second.accessToken)).status).toBe(200);
  });

  it("accessTokenRevokedAfterSeconds: an access token is refused that long after its issue, before its expiry; the window stays", async () => {
    sim.setVariants({ accessTokenRevokedAfterSeconds: 60 });
    const first = await login(sim);
    sim.advanceClock(59);
    expect((await getMe(sim, first.accessToken)).status).toBe(200);

    sim.advanceClock(1);

    expect((await getMe(sim, first.accessToken)).status).toBe(401);
    expect((await refresh(sim, first.refreshToken)).body).toEqual(TOO_EARLY);
    sim.advanceClock(510);
    const refreshed = await refresh(sim, first.refreshToken);
    expect((await getMe(sim, refreshed.body.access_token)).status).toBe(200);
  });
});
