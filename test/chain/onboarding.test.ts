import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { ValidationError } from "../../lib/errors.js";
import { type Fixture, startFixture } from "../support/fixture.js";

describe("Onboarding", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("starts a chain from a code and learns the Exact user and division", async () => {
    fx = await startFixture({ seed: false });
    const code = fx.stack.sim.authorize({
      clientId: fx.conn.clientId,
      username: fx.conn.username,
      redirectUri: fx.conn.redirectUri,
    });

    const result = await fx.broker().onboarding.seed(fx.conn.connectionId, encodeURIComponent(code));

    expect(result).toMatchObject({
      connectionId: fx.conn.connectionId,
      exactUserName: fx.conn.username,
      generation: 1,
    });
    expect(await fx.record()).toMatchObject({ status: ChainStatus.Active, division: result.division });
  });

  it("refuses a used code without changing the connection", async () => {
    fx = await startFixture({ seed: false });
    const code = fx.stack.sim.authorize({
      clientId: fx.conn.clientId,
      username: fx.conn.username,
      redirectUri: fx.conn.redirectUri,
    });
    await fx.broker().onboarding.seed(fx.conn.connectionId, code);

    await expect(fx.broker().onboarding.seed(fx.conn.connectionId, code)).rejects.toThrow(ValidationError);
    expect((await fx.record()).generation).toBe(1);
  });

  it("sends a second connection's tokens for the same user to the connection that holds the chain", async () => {
    fx = await startFixture();
    const before = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    const second = await fx.stack.addConnection("second", {
      clientId: fx.conn.clientId,
      username: `${fx.conn.username}.2`,
    });
    const code = fx.stack.sim.authorize({
      clientId: fx.conn.clientId,
      username: fx.conn.username,
      redirectUri: second.redirectUri,
    });

    const result = await fx.broker().onboarding.seed("second", code);

    expect(result).toMatchObject({
      connectionId: fx.conn.connectionId,
      redirectedFrom: "second",
      generation: 2,
    });
    expect((await fx.stack.store().get("second"))?.status).toBe(ChainStatus.New);
    // Exact killed the old chain; the holder of the user now serves the new one.
    const after = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    expect(after.generation).toBe(2);
    expect(after.accessToken).not.toBe(before.accessToken);
    fx.clock.advance(572);
    expect((await fx.broker().vend.vend(fx.conn.connectionId, 30)).generation).toBe(3);
    expect(fx.chainStats().tokenRequests.old_token).toBe(0);
  });

  it("frees the guard when a connection is removed, so the user can be connected again", async () => {
    fx = await startFixture();
    await fx.stack.store().removeConnection(await fx.record());
    const again = await fx.stack.addConnection("again", {
      clientId: fx.conn.clientId,
      username: `${fx.conn.username}.2`,
    });
    const code = fx.stack.sim.authorize({
      clientId: fx.conn.clientId,
      username: fx.conn.username,
      redirectUri: again.redirectUri,
    });

    const result = await fx.broker().onboarding.seed("again", code);

    expect(result.redirectedFrom).toBeUndefined();
    expect(result.connectionId).toBe("again");
  });
});
