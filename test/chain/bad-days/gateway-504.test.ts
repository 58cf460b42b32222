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
  successfulLogins,
  tokenAnswers,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

/** The API gateway's answer when Exact's OAuth server did not answer it in time. */
const GATEWAY_TIMEOUT = {
  fault: {
    faultstring: "Gateway Timeout",
    detail: { errorcode: "messaging.adaptors.http.flow.GatewayTimeout" },
  },
};

/** Seconds until the chain's next try: the app's next outage probe, 10 s into an outage plus up to 5 s of spread. */
function outagePaceS(fx: Fixture, record: { readonly backoffUntilMs?: number }): number {
  return ((record.backoffUntilMs ?? 0) - fx.clock.now()) / 1000;
}

/** Moves the clock just past the chain's backoff (the app's next outage probe) and vends. */
async function vendAfterBackoff(fx: Fixture, h: ReturnType<typeof harness>) {
  const until = (await recordOf(fx, fx.conn.connectionId)).backoffUntilMs ?? 0;
  fx.clock.advance(Math.max(1_000, until - fx.clock.now() + 1_000) / 1000);
  return vendOutcome(h.broker(), fx.conn.connectionId, 30);
}

/**
 * Issue 9: "500, 502, 504, or a reset after the request reached Exact, may have been processed.
 * That is an unknown outcome: SUSPECT, and one probe." A 504 is a gateway that gave up waiting
 * for Exact: Exact may or may not have rotated the chain behind it. It is an outage of the app
 * besides (outage-pacing.ts isOutage), so the probe comes at the app's outage pace, and Exact
 * counts no error for it (a 5xx).
 */
describe("a 504 Gateway Timeout on a refresh", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("after Exact processed it (the chain rotated): SUSPECT, one probe finds the chain rotated (lost_answer), one login heals it and the chain goes on", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    tokenScript(fx, { process: true, status: 504, json: GATEWAY_TIMEOUT });
    await advanceToWindow(fx);

    const first = await vendOutcome(h.broker(), id, 30);

    expect(first).toMatchObject({ error: "ExactUnavailable", retryable: true });
    const suspect = await recordOf(fx, id);
    expect(suspect).toMatchObject({
      status: ChainStatus.Suspect,
      statusReason: "lost_answer",
      generation: 1,
    });
    expect(countedErrors(suspect)).toBe(0);
    expect(outagePaceS(fx, suspect)).toBeGreaterThanOrEqual(9);
    expect(outagePaceS(fx, suspect)).toBeLessThanOrEqual(15);
    // Exact rotated the chain; the new pair was lost behind the gateway.
    expect(fx.chainStats().generation).toBe(2);
    // The current token still serves callers it is valid for while the chain is checked.
    expect(await vendOutcome(h.broker(), id, 0)).toMatchObject({ served: 1 });

    await vendAfterBackoff(fx, h);

    // One probe, answered "old refresh token": the chain is lost, and its heal is asked for.
    expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Broken, statusReason: "lost_answer" });
    expect(tokenAnswers(fx)).toEqual({ issued: 1, code_exchanged: 1, scripted: 1, old_token: 1 });
    expect(eventsOf(h.events)).toEqual([["ChainBroken", id, "lost_answer"]]);
    // No second probe.
    fx.clock.advance(60);
    await vendOutcome(h.broker(), id, 30);
    expect(tokenAnswers(fx).old_token).toBe(1);

    expect((await h.broker().heal.heal(id)).kind).toBe("healed");
    expect(successfulLogins(fx)).toBe(1);
    expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ served: 2 });
    expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Active, generation: 2 });
    await expectLiveChain(fx);
    expect(eventsOf(h.events).map(([type]) => type)).toEqual(["ChainBroken", "ChainHealed"]);
  });

  it("without processing: SUSPECT, and the one probe gets tokens with the same refresh token: no dead chain, no login, no event", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    tokenScript(fx, { status: 504, json: GATEWAY_TIMEOUT });
    await advanceToWindow(fx);

    const first = await vendOutcome(h.broker(), id, 30);

    expect(first).toMatchObject({ error: "ExactUnavailable", retryable: true });
    const suspect = await recordOf(fx, id);
    expect(suspect).toMatchObject({ status: ChainStatus.Suspect, generation: 1 });
    expect(countedErrors(suspect)).toBe(0);
    expect(outagePaceS(fx, suspect)).toBeGreaterThanOrEqual(9);
    expect(outagePaceS(fx, suspect)).toBeLessThanOrEqual(15);
    expect(fx.chainStats().generation).toBe(1);

    const probed = await vendAfterBackoff(fx, h);

    expect(probed).toMatchObject({ served: 2 });
    expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Active, generation: 2 });
    expect(tokenAnswers(fx)).toEqual({ issued: 2, code_exchanged: 1, scripted: 1, refreshed: 1 });
    await expectLiveChain(fx);
    expect(successfulLogins(fx)).toBe(0);
    expect(h.healsAsked).toEqual([]);
    expect(eventsOf(h.events)).toEqual([]);
  });
});
