import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { classifyTokenResponse } from "../../../lib/exact/classify-token-response.js";
import { sendHttp } from "../../../lib/exact/http.js";
import { ExactOAuthClient } from "../../../lib/exact/oauth-client.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  advanceToWindow,
  eventsOf,
  expectLiveChain,
  GATEWAY_FAULT,
  harness,
  recordOf,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

/**
 * README "Exact's answers and what the broker does": "Whatever the status, a body that carries a
 * `refresh_token` is stored before anything else" (design invariant 4). A 5xx that carries one is
 * `unavailable` (`server_error`) with its `rotated` tokens, a 2xx that carries one is `tokens`
 * even without an access token: token-protocol.ts stores them first. Were they dropped, the chain
 * would go SUSPECT, its probe would send the rotated-away token, Exact would answer "old refresh
 * token", and a login would replace a chain the broker had in hand.
 */
describe("a 5xx whose body carries Exact's new pair (processed, then a gateway error)", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("stores the refresh token the 500 carried: the chain stays live, no probe, no heal", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    tokenScript(fx, { process: true, mergePair: true, status: 500, json: GATEWAY_FAULT });
    await advanceToWindow(fx);

    await vendOutcome(h.broker(), id, 30);

    // Exact rotated the chain and said so in the body: the broker must hold the new refresh token.
    expect(fx.chainStats().generation).toBe(2);
    await expectLiveChain(fx);
    fx.clock.advance(3);
    await vendOutcome(h.broker(), id, 30);
    expect((await recordOf(fx, id)).status).not.toBe(ChainStatus.Broken);
    expect(eventsOf(h.events, "ChainBroken")).toEqual([]);
    expect(h.healsAsked).toEqual([]);
  });

  it("the classifier keeps a refresh token carried by a 502 or by a 200 without an access token", () => {
    const answer = (status: number, body: object) => ({
      kind: "response" as const,
      status,
      headers: new Headers({ "content-type": "application/json" }),
      body: JSON.stringify(body),
    });
    for (const outcome of [
      classifyTokenResponse(answer(502, { ...GATEWAY_FAULT, refresh_token: "rt-new" }), Date.now()),
      classifyTokenResponse(answer(200, { refresh_token: "rt-new", token_type: "bearer" }), Date.now()),
    ]) {
      expect(outcome).toMatchObject({ rotated: { refreshToken: "rt-new" } });
    }
  });
});

/**
 * A token answer that carries a refresh token and no access token (shared/exact-online.md: "a
 * token endpoint 200 whose body ... lacks expires_in has been reported"; here the access token is
 * what is missing). The simulator always issues a pair, so the answer is trimmed on its way back:
 * the broker's real HTTP client talks to the simulator through a send that drops `access_token`
 * and `expires_in` from the next token answer, as a faulty gateway would.
 */
describe("a 200 that carries a refresh token but no access token", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  function trimmingOnce(): ExactOAuthClient {
    let trimmed = false;
    return new ExactOAuthClient({
      now: () => fx.clock.now(),
      send: async (request) => {
        const outcome = await sendHttp(request);
        if (trimmed || outcome.kind !== "response" || !request.url.endsWith("/api/oauth2/token"))
          return outcome;
        trimmed = true;
        const { access_token: _access, expires_in: _expires, ...rest } = JSON.parse(outcome.body);
        return { ...outcome, body: JSON.stringify(rest) };
      },
    });
  }

  it("advances the chain; no access token is served until the next refresh, 570 s on, brings one", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    await advanceToWindow(fx);

    const first = await vendOutcome(h.broker({ oauth: trimmingOnce() }), id, 30);

    const advanced = await recordOf(fx, id);
    expect(advanced).toMatchObject({ status: ChainStatus.Active, generation: 2 });
    await expectLiveChain(fx);
    // The previous generation's access token is gone with it: nothing to serve, not even for 0 s.
    expect(advanced.accessCt).toBeUndefined();
    expect(advanced.accessExpiresAtMs).toBeUndefined();
    const waitS = ((advanced.windowOpensAtMs ?? 0) - fx.clock.now()) / 1000;
    expect(waitS).toBeGreaterThan(565);
    expect(waitS).toBeLessThanOrEqual(572);
    expect(first).toMatchObject({ error: "Throttled", retryable: true });
    expect(await vendOutcome(h.broker(), id, 0)).toMatchObject({ error: "Throttled", retryable: true });

    await advanceToWindow(fx);
    expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ served: 3 });
    await expectLiveChain(fx);
    expect(eventsOf(h.events)).toEqual([]);
    expect(h.healsAsked).toEqual([]);
  });
});
