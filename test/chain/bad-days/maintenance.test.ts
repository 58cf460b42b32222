import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  advanceToWindow,
  countedErrors,
  eventsOf,
  expectLiveChain,
  harness,
  MAINTENANCE_HTML,
  MAINTENANCE_TEXT,
  REAL_TIME_SLACK_MS,
  recordOf,
  tokenAnswers,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

/**
 * Exact's nightly maintenance: for a while the token endpoint answers a bare 400 with an HTML or
 * plain-text body, and the refresh token is not consumed (issue 9). The broker reads it as "Exact
 * unavailable" (lib/exact/classify-token-response.ts, cause `maintenance`): no dead chain, the
 * same refresh token later, no error counted against the chain's budget (an assumption:
 * countsAsExactError), and the app's outage pacing (app-states.ts probeIntervalMs: 10 s while
 * the outage is under a minute old).
 */
describe("nightly maintenance: a bare 400 with an HTML or plain-text body", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it.each([
    { kind: "HTML", contentType: "text/html; charset=utf-8", body: MAINTENANCE_HTML },
    { kind: "plain text", contentType: "text/plain; charset=utf-8", body: MAINTENANCE_TEXT },
  ])(
    "$kind: not processed, the chain lives, nothing counted, the same refresh token works 10-15 s later",
    async ({ contentType, body }) => {
      fx = await startFixture();
      const h = harness(fx);
      const id = fx.conn.connectionId;
      const before = await recordOf(fx, id);
      tokenScript(fx, { status: 400, contentType, body });
      await advanceToWindow(fx);
      const answeredAtMs = fx.clock.now();

      const refused = await vendOutcome(h.broker(), id, 30);

      expect(refused).toMatchObject({ error: "ExactUnavailable", retryable: true });
      const retryAfter = "retryAfterSeconds" in refused ? (refused.retryAfterSeconds ?? 0) : 0;
      expect(retryAfter).toBeGreaterThanOrEqual(10);
      expect(retryAfter).toBeLessThanOrEqual(15);
      const after = await recordOf(fx, id);
      expect(after).toMatchObject({
        status: ChainStatus.Active,
        generation: 1,
        backoffReason: "unavailable",
        oddAnswers: { count: 1 },
      });
      expect(countedErrors(after)).toBe(0);
      // The next try is soon: the outage's next probe (10 s) plus a spread of at most 5 s.
      expect((after.backoffUntilMs ?? 0) - answeredAtMs).toBeGreaterThanOrEqual(10_000);
      // (Plus the call's own real time: the clock is Date.now() plus the test's offset.)
      expect((after.backoffUntilMs ?? 0) - answeredAtMs).toBeLessThanOrEqual(15_000 + REAL_TIME_SLACK_MS);
      expect(after.dueAtMs).toBe(after.backoffUntilMs);
      // Exact did not process it: its chain is where it was, and the broker still holds it.
      expect(after.refreshHash).toBe(before.refreshHash);
      expect(tokenAnswers(fx)).toEqual({ issued: 1, code_exchanged: 1, scripted: 1 });
      await expectLiveChain(fx);
      // The current token still serves callers it is valid for.
      expect(await vendOutcome(h.broker(), id, 0)).toMatchObject({ served: 1 });

      fx.clock.advance(((after.backoffUntilMs ?? 0) - fx.clock.now()) / 1000);
      const served = await vendOutcome(h.broker(), id, 30);

      expect(served).toMatchObject({ served: 2 });
      expect(tokenAnswers(fx)).toEqual({ issued: 2, code_exchanged: 1, refreshed: 1, scripted: 1 });
      const healed = await recordOf(fx, id);
      expect(healed).toMatchObject({ status: ChainStatus.Active, generation: 2 });
      expect(healed.oddAnswers).toBeUndefined();
      expect(countedErrors(healed)).toBe(0);
      await expectLiveChain(fx);
      expect(eventsOf(h.events)).toEqual([]);
      expect(h.healsAsked).toEqual([]);
    },
  );

  it("three in a row (HTML, text, HTML) do not strand the chain: retried every 10-15 s, nothing counted, a token within 15 s of Exact being back", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    tokenScript(fx, { status: 400, contentType: "text/html", body: MAINTENANCE_HTML });
    tokenScript(fx, { status: 400, contentType: "text/plain", body: MAINTENANCE_TEXT });
    tokenScript(fx, { status: 400, contentType: "text/html", body: MAINTENANCE_HTML });
    await advanceToWindow(fx);

    const waits: number[] = [];
    for (let answer = 1; answer <= 3; answer++) {
      const atMs = fx.clock.now();
      expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ error: "ExactUnavailable" });
      const record = await recordOf(fx, id);
      expect(record).toMatchObject({ status: ChainStatus.Active, oddAnswers: { count: answer } });
      expect(countedErrors(record)).toBe(0);
      waits.push((record.backoffUntilMs ?? 0) - atMs);
      fx.clock.advance(((record.backoffUntilMs ?? 0) - atMs) / 1000);
    }
    const exactBackAtMs = fx.clock.now() - (waits[2] ?? 0);
    const served = await vendOutcome(h.broker(), id, 30);

    for (const wait of waits) {
      expect(wait).toBeGreaterThanOrEqual(10_000);
      expect(wait).toBeLessThanOrEqual(15_000 + REAL_TIME_SLACK_MS);
    }
    expect(served).toMatchObject({ served: 2 });
    expect(fx.clock.now() - exactBackAtMs).toBeLessThanOrEqual(15_000 + REAL_TIME_SLACK_MS);
    expect(tokenAnswers(fx)).toEqual({ issued: 2, code_exchanged: 1, refreshed: 1, scripted: 3 });
    const record = await recordOf(fx, id);
    expect(record).toMatchObject({ status: ChainStatus.Active, generation: 2 });
    expect(countedErrors(record)).toBe(0);
    await expectLiveChain(fx);
    expect(eventsOf(h.events)).toEqual([]);
  });
});
