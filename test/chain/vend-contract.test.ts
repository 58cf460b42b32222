import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import type { VendAnswer } from "../../lib/chain/token-cache.js";
import { BrokerError, ExactUnavailable } from "../../lib/errors.js";
import { type Fixture, startFixture } from "../support/fixture.js";

/** Seconds from seeding until the fixture's refresh window is open: 28 s of validity left. */
const WINDOW = 572;
const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

function validityMs(fx: Fixture, answer: VendAnswer): number {
  return Date.parse(answer.expiresAt) - fx.clock.now();
}

async function refusal(promise: Promise<unknown>): Promise<BrokerError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BrokerError);
  return error as BrokerError;
}

describe("the vend contract: never less validity than asked", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("while Exact fails (5xx backoff) serves only callers whose ask the current token still meets", async () => {
    fx = await startFixture();
    fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "token", count: 5 });
    fx.clock.advance(WINDOW);
    const broker = fx.broker(NO_HEAL);

    const thirty = await refusal(broker.vend.vend(fx.conn.connectionId, 30));
    const twenty = await broker.vend.vend(fx.conn.connectionId, 20);
    const any = await fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 0);

    expect(thirty).toBeInstanceOf(ExactUnavailable);
    expect(thirty.retryAfterSeconds).toBeGreaterThan(0);
    expect(validityMs(fx, twenty)).toBeGreaterThanOrEqual(20_000);
    expect(validityMs(fx, any)).toBeGreaterThan(0);
    expect(twenty.generation).toBe(1);
  });

  it("after an unknown outcome (SUSPECT), a token with 0.35 s left is not served to a caller that asked 2 s", async () => {
    fx = await startFixture();
    fx.stack.sim.addFault({ kind: "reset", endpoint: "token", count: 1 });
    fx.clock.advance(WINDOW);
    await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ExactUnavailable);
    expect((await fx.record()).status).toBe(ChainStatus.Suspect);
    // Exact stays down, so the probe cannot settle it either.
    fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "token", count: 5 });
    fx.clock.advance(28 - 0.35);

    const error = await refusal(
      fx.broker({ ...NO_HEAL, random: () => 0.99 }).vend.vend(fx.conn.connectionId, 2),
    );

    expect(error.retryable).toBe(true);
  });

  it("answers every vend with at least the validity it asked for, whatever it asked", async () => {
    fx = await startFixture();
    fx.clock.advance(WINDOW - 10);
    const broker = fx.broker();

    for (const ask of [0, 1, 15, 30]) {
      const answer = await broker.vend.vend(fx.conn.connectionId, ask);
      expect(validityMs(fx, answer), `asked ${ask} s`).toBeGreaterThanOrEqual(Math.max(1, ask * 1000));
    }
  });
});
