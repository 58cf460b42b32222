import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { TOKEN_ERRORS_PER_HOUR } from "../../../lib/chain/error-budget.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  addSibling,
  advanceToWindow,
  countedErrors,
  eventsOf,
  expectLiveChain,
  GATEWAY_FAULT,
  harness,
  recordOf,
  tokenAnswers,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

/**
 * Issue 9: a 500/502/504 "may have been processed: SUSPECT, and one probe". The probe that gets a
 * 5xx again proves nothing (a rotated chain answers its probe "old refresh token", a 4xx): it is a
 * new unknown outcome, and the chain stays SUSPECT (token-refusals.ts settleRefusal); only a
 * probe with no answer at all, or "old refresh token", ends it. 502 and 504 are an outage of the
 * app besides (outage-pacing.ts isOutage): one chain asks for all. Otherwise a gateway outage of
 * a few seconds (nothing processed) would throw away every chain of the app that asked: one
 * ChainBroken and one login per chain, though Exact still accepts each stored refresh token.
 */
describe("a short 502 outage (nothing processed) while two chains of one app refresh", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("keeps both live chains: no BROKEN, no ChainBroken, no heal", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const b = await addSibling(fx, "gw-b");
    const chains = [fx.conn, b];
    await advanceToWindow(fx, b.connectionId);
    // Bad Gateway for the next four token calls of the app, none processed.
    tokenScript(fx, { count: 4, status: 502, json: GATEWAY_FAULT });

    for (const conn of chains) await vendOutcome(h.broker(), conn.connectionId, 30);
    fx.clock.advance(3);
    for (const conn of chains) await vendOutcome(h.broker(), conn.connectionId, 30);

    const statuses = [];
    for (const conn of chains) statuses.push((await recordOf(fx, conn.connectionId)).status);
    // Exact is back and still holds the chains the broker stores.
    for (const conn of chains) await expectLiveChain(fx, conn);
    expect({
      statuses,
      chainBroken: eventsOf(h.events, "ChainBroken").length,
      healsAsked: h.healsAsked.length,
    }).toEqual({
      statuses: statuses.map(() => expect.not.stringMatching(ChainStatus.Broken)),
      chainBroken: 0,
      healsAsked: 0,
    });
  });
});

/**
 * Bounds (invariant 5: never a retry loop). A 500 is not an outage of the app (it may come after
 * processing): nothing paces it, so each 500 answer to a probe spends the chain's error budget
 * (error-budget.ts: 8 an hour) and doubles its backoff. A probe that gets no answer at all still
 * ends the chain (lost_answer): only an answer keeps the probe's question open.
 */
describe("a probe answered 5xx, again and again", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("500s for an hour: never BROKEN, at most 8 probes (the error budget), then tokens once Exact is back", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    await advanceToWindow(fx);
    tokenScript(fx, { count: 1_000, status: 500, json: GATEWAY_FAULT });

    // A consumer every 10 s and the scheduled refresh every minute, for an hour.
    for (let s = 0; s < 3_600; s += 10) {
      await vendOutcome(h.broker(), id, 30);
      if (s % 60 === 0) await h.broker().refresh.run();
      fx.clock.advance(10);
    }

    const record = await recordOf(fx, id);
    // The refresh whose 500 made the chain SUSPECT, then its probes: one per 500, 8 an hour.
    expect(tokenAnswers(fx).scripted).toBe(1 + TOKEN_ERRORS_PER_HOUR);
    expect(record.status).toBe(ChainStatus.Suspect);
    expect(countedErrors(record)).toBe(TOKEN_ERRORS_PER_HOUR);
    expect(eventsOf(h.events, "ChainBroken")).toEqual([]);
    expect(h.healsAsked).toEqual([]);

    // Exact is back (nothing was processed): once the budget frees, the next probe gets tokens.
    fx.stack.sim.clearScripts();
    fx.clock.advance(10 * 60);
    expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ served: 2 });
    expect((await recordOf(fx, id)).status).toBe(ChainStatus.Active);
    await expectLiveChain(fx);
  });

  it("a probe answered 502 stays SUSPECT without spending the budget, paced as the app's outage", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    await advanceToWindow(fx);
    tokenScript(fx, { count: 2, status: 502, json: GATEWAY_FAULT });

    const first = await vendOutcome(h.broker(), id, 30);
    const paced = await recordOf(fx, id);
    // The app's next probe: 10 s into an outage, plus up to 5 s of spread.
    expect(first).toMatchObject({ error: "ExactUnavailable", retryable: true });
    expect(paced.status).toBe(ChainStatus.Suspect);
    const waitS = ((paced.backoffUntilMs ?? 0) - fx.clock.now()) / 1000;
    expect(waitS).toBeGreaterThanOrEqual(9);
    expect(waitS).toBeLessThanOrEqual(15);

    fx.clock.advance(waitS + 1);
    await vendOutcome(h.broker(), id, 30);
    const probed = await recordOf(fx, id);
    expect(tokenAnswers(fx).scripted).toBe(2);
    expect(probed.status).toBe(ChainStatus.Suspect);
    expect(countedErrors(probed)).toBe(0);

    fx.clock.advance(((probed.backoffUntilMs ?? 0) - fx.clock.now()) / 1000 + 1);
    expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ served: 2 });
    expect(eventsOf(h.events)).toEqual([]);
    await expectLiveChain(fx);
  });

  it("a probe that gets no answer at all still ends the chain (lost_answer)", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    await advanceToWindow(fx);
    tokenScript(fx, { status: 500, json: GATEWAY_FAULT });
    await vendOutcome(h.broker(), id, 30);
    expect((await recordOf(fx, id)).status).toBe(ChainStatus.Suspect);

    fx.stack.sim.addFault({ kind: "reset", endpoint: "token", clientId: fx.conn.clientId });
    fx.clock.advance(3);
    await vendOutcome(h.broker(), id, 30);

    expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Broken, statusReason: "lost_answer" });
    expect(eventsOf(h.events)).toEqual([["ChainBroken", id, "lost_answer"]]);
  });
});
