import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  advanceToWindow,
  countedErrors,
  eventsOf,
  expectLiveChain,
  harness,
  recordOf,
  tokenAnswers,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

/** Someone authorizes the app for the same user elsewhere: Exact starts a new chain, ours is superseded. */
async function supersedeOutsideTheBroker(fx: Fixture): Promise<void> {
  const { clientId, username, redirectUri } = fx.conn;
  const code = fx.stack.sim.authorize({ clientId, username, redirectUri });
  const response = await fetch(`${fx.stack.sim.url}/api/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri,
      client_id: clientId,
      // As lib/local/local-stack.ts registers the app.
      client_secret: `cs-sEcReT-${clientId}-0123456789`,
    }),
  });
  expect(response.status).toBe(200);
  await response.arrayBuffer();
}

const TOO_EARLY_REASON = "TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired";
const TOO_EARLY_BODY = {
  error: "access_denied",
  error_description: "Rate limit exceeded: access_token not expired",
};

/**
 * The answers the broker handled before issue 9 (shared/exact-online.md "Errors on the token
 * endpoint"), each as Exact's own rules in the simulator produce it (or scripted verbatim), and
 * the broker's action: the dead chains are BROKEN and announced (a heal follows), too-early keeps
 * the chain and its refresh token. Each is a 4xx, counted against the chain's budget.
 */
describe("the answers already handled", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it.each([
    {
      // Superseded by an authorization elsewhere: Exact's answer is the old-token 401.
      answer: "401 Old refresh token used",
      provoke: async (f: Fixture) => {
        await supersedeOutsideTheBroker(f);
        await advanceToWindow(f);
      },
      simOutcome: "superseded",
      reason: "old_token",
    },
    {
      // Variant oldTokenAs400Obsoleted: "An obsoleted refresh token can not be used."
      answer: "400 obsoleted refresh token",
      provoke: async (f: Fixture) => {
        f.stack.sim.setVariants({ oldTokenAs400Obsoleted: true });
        await supersedeOutsideTheBroker(f);
        await advanceToWindow(f);
      },
      simOutcome: "superseded",
      reason: "old_token",
    },
    {
      // 31 idle days: "The refresh token expired at …"
      answer: "400 refresh token expired",
      provoke: async (f: Fixture) => {
        f.clock.advance(31 * 86_400);
      },
      simOutcome: "expired",
      reason: "refresh_expired",
    },
    {
      // Variant supersededAsInvalidGrant: "Token is not allowed, because of invalid or empty chainId".
      answer: "400 invalid_grant chainId",
      provoke: async (f: Fixture) => {
        f.stack.sim.setVariants({ supersededAsInvalidGrant: true });
        await supersedeOutsideTheBroker(f);
        await advanceToWindow(f);
      },
      simOutcome: "superseded",
      reason: "invalid_chain",
    },
  ])(
    "$answer: BROKEN ($reason), ChainBroken, a heal asked for, the error counted",
    async ({ provoke, simOutcome, reason }) => {
      fx = await startFixture();
      const h = harness(fx);
      const id = fx.conn.connectionId;
      await provoke(fx);

      expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ error: "ChainBusy", retryable: true });

      const record = await recordOf(fx, id);
      expect(record).toMatchObject({ status: ChainStatus.Broken, statusReason: reason });
      expect(countedErrors(record)).toBe(1);
      expect(tokenAnswers(fx)[simOutcome]).toBe(1);
      expect(eventsOf(h.events)).toEqual([["ChainBroken", id, reason]]);
      expect(h.healsAsked).toContain(id);
    },
  );

  it.each([{ status: 400 }, { status: 401 }])(
    "too early, $status access_denied with the Reason header: the chain is fine (ACTIVE), Throttled for 5 s, the error counted, the same refresh token works after",
    async ({ status }) => {
      fx = await startFixture();
      const h = harness(fx);
      const id = fx.conn.connectionId;
      tokenScript(fx, { status, headers: { Reason: TOO_EARLY_REASON }, json: TOO_EARLY_BODY });
      await advanceToWindow(fx);
      const answeredAtMs = fx.clock.now();

      expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({
        error: "Throttled",
        retryable: true,
        retryAfterSeconds: 5,
      });

      const record = await recordOf(fx, id);
      expect(record).toMatchObject({ status: ChainStatus.Active, generation: 1, backoffReason: "throttled" });
      expect(countedErrors(record)).toBe(1);
      expect(record.windowOpensAtMs).toBeGreaterThanOrEqual(answeredAtMs + 5_000);
      await expectLiveChain(fx);
      expect(eventsOf(h.events)).toEqual([]);

      fx.clock.advance(((record.windowOpensAtMs ?? 0) - fx.clock.now()) / 1000);
      expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ served: 2 });
      expect(tokenAnswers(fx)).toEqual({ issued: 2, code_exchanged: 1, refreshed: 1, scripted: 1 });
      await expectLiveChain(fx);
    },
  );
});
