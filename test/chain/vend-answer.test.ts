import { afterEach, describe, expect, it } from "vitest";
import { countingDynamo, resetCounts } from "../../lib/local/counting-dynamo.js";
import { type Fixture, startFixture } from "../support/fixture.js";

describe("a vend answer", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("carries the connection's Exact client ID and the whole seconds of validity left when it was made", async () => {
    fx = await startFixture();
    const broker = fx.broker();
    const beforeMs = fx.clock.now();

    const answer = await broker.vend.vend(fx.conn.connectionId, 30);

    const afterMs = fx.clock.now();
    const expiresAtMs = Date.parse(answer.expiresAt);
    expect(answer.clientId).toBe(fx.conn.clientId);
    // Made between the two readings of the clock, rounded down.
    expect(answer.expiresInSeconds).toBeGreaterThanOrEqual(Math.floor((expiresAtMs - afterMs) / 1000));
    expect(answer.expiresInSeconds).toBeLessThanOrEqual(Math.floor((expiresAtMs - beforeMs) / 1000));
  });

  it("counts expiresInSeconds at answer time when it comes from a warm container's memory", async () => {
    fx = await startFixture();
    const { client, counts } = countingDynamo(fx.stack.dynamo.endpoint);
    const broker = fx.broker({ dynamo: client });
    const first = await broker.vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(40);
    resetCounts(counts);

    const cached = await broker.vend.vend(fx.conn.connectionId, 30);

    expect(counts).toEqual({});
    expect(cached.expiresAt).toBe(first.expiresAt);
    expect(first.expiresInSeconds - cached.expiresInSeconds).toBeGreaterThanOrEqual(39);
    expect(first.expiresInSeconds - cached.expiresInSeconds).toBeLessThanOrEqual(41);
  });
});
