import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  advanceToWindow,
  countedErrors,
  eventsOf,
  expectLiveChain,
  GATEWAY_FAULT,
  harness,
  recordOf,
  successfulLogins,
  tokenAnswers,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

/** The simulator's latency runs in real time (lib/sim/README.md "The clock"). */
const LATENCY_MS = 2_000;

/**
 * "A call that took about 35 s ended in HTTP 500 with an API-gateway fault body, yet Exact had
 * rotated the chain" (shared/exact-online.md). The call here is slow too, but 2 s, not 35 s:
 * with the default HTTP_TIMEOUT_MS (8 s, inside LEASE_SECONDS 20) the broker aborts a 35 s call
 * at 8 s and never sees the 500 (that abort is the same outcome-unknown path, tested in
 * lease-protocol.test.ts), and a 35 s latency would hold the test for 35 real seconds.
 */
describe("a 500 with an API-gateway fault body after Exact processed the refresh (a slow call)", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("makes the chain SUSPECT; one probe finds it rotated (lost_answer, BROKEN); one login heals it", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    fx.stack.sim.addFault({
      kind: "latency",
      latencyMs: LATENCY_MS,
      endpoint: "token",
      clientId: fx.conn.clientId,
    });
    tokenScript(fx, { process: true, status: 500, json: GATEWAY_FAULT });
    await advanceToWindow(fx);

    const first = await vendOutcome(h.broker(), id, 30);

    expect(first).toMatchObject({ error: "ExactUnavailable", retryable: true, retryAfterSeconds: 2 });
    const suspect = await recordOf(fx, id);
    expect(suspect).toMatchObject({
      status: ChainStatus.Suspect,
      statusReason: "lost_answer",
      generation: 1,
    });
    expect(countedErrors(suspect)).toBe(0);
    // Exact rotated the chain; its answer (the new pair) was lost in the 500.
    expect(fx.chainStats().generation).toBe(2);
    expect(suspect.refreshHash).not.toBe(fx.chainStats().liveRefreshHash);
    expect(tokenAnswers(fx)).toEqual({ issued: 1, code_exchanged: 1, scripted: 1 });
    // The current token still serves callers it is valid for while the chain is checked.
    expect(await vendOutcome(h.broker(), id, 0)).toMatchObject({ served: 1 });

    fx.clock.advance(3);
    const probed = await vendOutcome(h.broker(), id, 30);

    expect(probed).toMatchObject({ error: "ChainBusy", retryable: true });
    const broken = await recordOf(fx, id);
    expect(broken).toMatchObject({ status: ChainStatus.Broken, statusReason: "lost_answer" });
    // One probe, answered "old refresh token" (a 401: Exact counts it, so the chain does).
    expect(tokenAnswers(fx)).toEqual({ issued: 1, code_exchanged: 1, scripted: 1, old_token: 1 });
    expect(countedErrors(broken)).toBe(1);
    expect(eventsOf(h.events)).toEqual([["ChainBroken", id, "lost_answer"]]);

    // No second probe: the chain waits for its heal.
    fx.clock.advance(10);
    expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ error: "ChainBusy" });
    expect(tokenAnswers(fx).old_token).toBe(1);

    expect((await h.broker().heal.heal(id)).kind).toBe("healed");
    expect(successfulLogins(fx)).toBe(1);
    expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Active, generation: 2 });
    await expectLiveChain(fx);
    expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ served: 2 });
    expect(eventsOf(h.events).map(([type]) => type)).toEqual(["ChainBroken", "ChainHealed"]);
  });
});
