import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  addSibling,
  advanceToWindow,
  countedErrors,
  eventsOf,
  expectLiveChain,
  harness,
  REAL_TIME_SLACK_MS,
  recordOf,
  tokenAnswers,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

const SERVICE_UNAVAILABLE =
  "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>";

/**
 * 503 and 429 say "not processed": an outage (or throttling) of the app, never a dead chain, and
 * never an unknown outcome, so no probe. The same refresh token is sent later.
 */
describe("503 and 429 from the token endpoint (not processed)", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it.each([
    {
      answer: "503 (an HTML page)",
      script: { status: 503, contentType: "text/html", body: SERVICE_UNAVAILABLE },
      error: "ExactUnavailable",
      backoffReason: "unavailable",
      counted: 0,
      // The outage's pace: its first minute is probed every 10 s.
      waitS: 10,
    },
    {
      answer: "429 without Retry-After",
      script: { status: 429, json: { error: "too_many_requests", error_description: "Too many requests." } },
      error: "Throttled",
      backoffReason: "throttled",
      // Every 4xx is counted against the chain's budget (countsAsExactError), 429 included.
      counted: 1,
      // Throttling without a Retry-After: the classifier's 60 s, longer than the outage's pace.
      waitS: 60,
    },
  ])(
    "$answer: an outage of the app, the chain stays ACTIVE (no probe), tried again $waitS s later (at most 5 s more) with the same refresh token",
    async ({ script, error, backoffReason, counted, waitS }) => {
      fx = await startFixture();
      const h = harness(fx);
      const id = fx.conn.connectionId;
      const before = await recordOf(fx, id);
      tokenScript(fx, script);
      await advanceToWindow(fx);
      const answeredAtMs = fx.clock.now();

      expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ error, retryable: true });

      const after = await recordOf(fx, id);
      expect(after).toMatchObject({ status: ChainStatus.Active, generation: 1, backoffReason });
      expect(after.refreshHash).toBe(before.refreshHash);
      expect(after.oddAnswers).toBeUndefined();
      expect(countedErrors(after)).toBe(counted);
      expect((after.backoffUntilMs ?? 0) - answeredAtMs).toBeGreaterThanOrEqual(waitS * 1000);
      expect((after.backoffUntilMs ?? 0) - answeredAtMs).toBeLessThanOrEqual(
        (waitS + 5) * 1000 + REAL_TIME_SLACK_MS,
      );
      await expectLiveChain(fx);

      fx.clock.advance(((after.backoffUntilMs ?? 0) - fx.clock.now()) / 1000);
      expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ served: 2 });
      // One scripted answer, then the same refresh token refreshed: no probe, nothing else sent.
      expect(tokenAnswers(fx)).toEqual({ issued: 2, code_exchanged: 1, refreshed: 1, scripted: 1 });
      expect((await recordOf(fx, id)).status).toBe(ChainStatus.Active);
      await expectLiveChain(fx);
      expect(eventsOf(h.events)).toEqual([]);
    },
  );

  it.each([
    { held: "answered 503" },
    // Another chain's 503 began the app's outage: the probe is held without a call.
    { held: "held by the app's pacing" },
  ])(
    "a SUSPECT chain's probe $held stays SUSPECT, the probe not spent; after the outage it proves the chain alive",
    async ({ held }) => {
      fx = await startFixture();
      const h = harness(fx);
      const id = fx.conn.connectionId;
      const sibling = held.startsWith("held") ? await addSibling(fx, "sibling-probe") : undefined;
      await advanceToWindow(fx, sibling?.connectionId ?? id);
      // The connection is reset after the request was sent: outcome unknown (Exact did not process it).
      fx.stack.sim.addFault({ kind: "reset", endpoint: "token", clientId: fx.conn.clientId, count: 1 });
      expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ error: "ExactUnavailable" });
      expect((await recordOf(fx, id)).status).toBe(ChainStatus.Suspect);

      fx.clock.advance(3);
      tokenScript(fx, { status: 503, contentType: "text/html", body: SERVICE_UNAVAILABLE });
      if (sibling) {
        expect(await vendOutcome(h.broker(), sibling.connectionId, 30)).toMatchObject({
          error: "ExactUnavailable",
        });
      }
      expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ error: "ExactUnavailable" });
      expect((await recordOf(fx, id)).status).toBe(ChainStatus.Suspect);
      expect(tokenAnswers(fx)).toEqual({
        issued: 1,
        code_exchanged: 1,
        fault_reset: 1,
        ...(sibling ? {} : { scripted: 1 }),
      });

      let tries = 0;
      while ((await recordOf(fx, id)).status === ChainStatus.Suspect && tries < 5) {
        const until = (await recordOf(fx, id)).backoffUntilMs ?? 0;
        if (until > fx.clock.now()) fx.clock.advance((until - fx.clock.now()) / 1000);
        await vendOutcome(h.broker(), id, 30);
        tries += 1;
      }
      expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Active, generation: 2 });
      expect(tokenAnswers(fx).refreshed).toBe(1);
      expect(tokenAnswers(fx).old_token).toBeUndefined();
      await expectLiveChain(fx);
      expect(eventsOf(h.events)).toEqual([]);
    },
  );

  it("a 503 that lasts: one chain of the app asks for all of them, the others wait without a call", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const a = fx.conn;
    const b = await addSibling(fx, "sibling-503");
    tokenScript(fx, { status: 503, contentType: "text/html", body: SERVICE_UNAVAILABLE, count: 1_000 });
    await advanceToWindow(fx, b.connectionId);

    expect(await vendOutcome(h.broker(), a.connectionId, 30)).toMatchObject({ error: "ExactUnavailable" });
    expect(await vendOutcome(h.broker(), b.connectionId, 30)).toMatchObject({ error: "ExactUnavailable" });

    // The second chain was held by the app's pacing: no token call of its own.
    expect(fx.stack.sim.stats().totals.tokenRequests.scripted).toBe(1);
    expect(tokenAnswers(fx, b)).toEqual({ issued: 1, code_exchanged: 1 });
    expect((await recordOf(fx, b.connectionId)).status).toBe(ChainStatus.Active);
  });

  /**
   * Fails: the broker does not honour Retry-After on a 429. token-refusals.ts settleRefusal takes
   * the outage pacing's wait (pacedUntilMs: probeIntervalMs, 10 s while the outage is young) over
   * the answer's retryAfterSeconds whenever isOutage(outcome), and a 429 is an outage
   * (outage-pacing.ts isOutage); AppStates.outage paces the app's next probe the same way. So the
   * same refresh token is sent again about 10-15 s later, into Exact's throttle, the 429 counted
   * against the chain's budget each time, and consumers are told to retry in 11-15 s.
   */
  it("429 with Retry-After: 60: the chain waits as long as Exact asks before it sends the same refresh token again", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    tokenScript(fx, {
      count: 2,
      status: 429,
      headers: { "Retry-After": "60" },
      json: { error: "too_many_requests", error_description: "Too many requests." },
    });
    await advanceToWindow(fx);
    const answeredAtMs = fx.clock.now();

    const refused = await vendOutcome(h.broker(), id, 30);
    const after = await recordOf(fx, id);
    fx.clock.advance(20);
    await vendOutcome(h.broker(), id, 30);

    expect({
      vend: refused,
      status: after.status,
      waitsAtLeastRetryAfter: (after.backoffUntilMs ?? 0) - answeredAtMs >= 60_000,
      sentWithinRetryAfter: (tokenAnswers(fx).scripted ?? 0) - 1,
    }).toEqual({
      vend: {
        error: "Throttled",
        retryable: true,
        retryAfterSeconds: expect.toSatisfy((s: number) => s >= 60),
      },
      status: ChainStatus.Active,
      waitsAtLeastRetryAfter: true,
      sentWithinRetryAfter: 0,
    });
  });
});
