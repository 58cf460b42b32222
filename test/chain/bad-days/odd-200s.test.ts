import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  advanceToWindow,
  countedErrors,
  eventsOf,
  expectLiveChain,
  harness,
  REAL_TIME_SLACK_MS,
  recordOf,
  successfulLogins,
  tokenAnswers,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

/** "A token endpoint 200 whose body is an error, or lacks expires_in" (shared/exact-online.md). */
describe("a 200 whose body is an OAuth error, without tokens", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("invalid_grant: the chain is dead (BROKEN, invalid_chain, not counted: a 200), one login heals it", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    tokenScript(fx, {
      status: 200,
      json: {
        error: "invalid_grant",
        error_description: "Token is not allowed, because of invalid or empty chainId",
      },
    });
    await advanceToWindow(fx);

    const refused = await vendOutcome(h.broker(), id, 30);

    expect(refused).toMatchObject({ error: "ChainBusy", retryable: true });
    const broken = await recordOf(fx, id);
    expect(broken).toMatchObject({ status: ChainStatus.Broken, statusReason: "invalid_chain" });
    expect(countedErrors(broken)).toBe(0);
    expect(eventsOf(h.events)).toEqual([["ChainBroken", id, "invalid_chain"]]);
    expect(h.healsAsked).toContain(id);

    const healed = await h.broker().heal.heal(id);

    expect(healed.kind).toBe("healed");
    expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Active, generation: 2 });
    expect(successfulLogins(fx)).toBe(1);
    await expectLiveChain(fx);
    expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ served: 2 });
  });

  it("an error the broker does not know (server_error): an odd answer, the chain lives, retried in about 2 s with the same token", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    tokenScript(fx, {
      status: 200,
      json: { error: "server_error", error_description: "An unexpected error occurred." },
    });
    await advanceToWindow(fx);
    const answeredAtMs = fx.clock.now();

    const refused = await vendOutcome(h.broker(), id, 30);

    expect(refused).toMatchObject({ error: "ExactUnavailable", retryable: true });
    const odd = await recordOf(fx, id);
    expect(odd).toMatchObject({ status: ChainStatus.Active, generation: 1, oddAnswers: { count: 1 } });
    expect(countedErrors(odd)).toBe(0);
    // Not an outage Exact admits: the chain's own backoff (2 s, jittered ±20 %).
    expect((odd.backoffUntilMs ?? 0) - answeredAtMs).toBeGreaterThanOrEqual(1_600);
    expect((odd.backoffUntilMs ?? 0) - answeredAtMs).toBeLessThanOrEqual(2_400 + REAL_TIME_SLACK_MS);
    await expectLiveChain(fx);

    fx.clock.advance(3);
    expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ served: 2 });
    expect(tokenAnswers(fx)).toEqual({ issued: 2, code_exchanged: 1, refreshed: 1, scripted: 1 });
    await expectLiveChain(fx);
    expect(eventsOf(h.events)).toEqual([]);
  });
});

describe("a 200 success without expires_in", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("is a success: the pair is stored with Exact's documented 600 s, and the vend that asked gets it", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    // Processed (the chain rotates); the new pair is merged into a body without expires_in.
    tokenScript(fx, { process: true, mergePair: true, status: 200, json: { token_type: "bearer" } });
    await advanceToWindow(fx);
    const askedAtMs = fx.clock.now();

    const served = await vendOutcome(h.broker(), id, 30);

    expect(served).toMatchObject({ served: 2 });
    const expiresAtMs = "expiresAtMs" in served ? served.expiresAtMs : 0;
    // 600 s from the answer's arrival (a little real time passes during the call).
    expect(expiresAtMs - askedAtMs).toBeGreaterThanOrEqual(600_000);
    expect(expiresAtMs - askedAtMs).toBeLessThanOrEqual(605_000);
    const record = await recordOf(fx, id);
    expect(record).toMatchObject({ status: ChainStatus.Active, generation: 2 });
    expect((record.accessExpiresAtMs ?? 0) - (record.accessIssuedAtMs ?? 0)).toBe(600_000);
    expect(tokenAnswers(fx)).toEqual({ issued: 1, code_exchanged: 1, scripted: 1 });
    expect(fx.chainStats().generation).toBe(2);
    await expectLiveChain(fx);
    expect(countedErrors(record)).toBe(0);
    expect(eventsOf(h.events)).toEqual([]);
  });
});
