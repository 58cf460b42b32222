import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import type { InProcessHealTrigger } from "../../lib/chain/heal-trigger.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { storedSecret } from "../support/stored-secret.js";

const CALLERS = 50;

function logins(fx: Fixture) {
  return fx.stack.sim.stats().logins[fx.conn.username]?.success ?? 0;
}

async function vendAll(fx: Fixture, minValiditySeconds: number) {
  // One broker per caller: 50 containers, no shared cache, no in-process coalescing.
  const brokers = Array.from({ length: CALLERS }, () => fx.broker({ vendOptions: { coalesce: false } }));
  return Promise.all(brokers.map((broker) => broker.vend.vend(fx.conn.connectionId, minValiditySeconds)));
}

describe("implicit-only mode", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("onboards on the first vends with one login, and logs in once per token lifetime under 50 concurrent vends", async () => {
    fx = await startFixture({ mode: "implicit", realShortSleeps: true });

    const first = await vendAll(fx, 30);
    expect(new Set(first.map((a) => a.accessToken)).size).toBe(1);
    expect(first[0]?.generation).toBe(1);
    expect(logins(fx)).toBe(1);
    const record = await fx.record();
    expect(record).toMatchObject({ status: ChainStatus.Active, exactUserName: fx.conn.username });
    expect(record.refreshCt).toBeUndefined();

    fx.clock.advance(300);
    expect(new Set((await vendAll(fx, 30)).map((a) => a.generation))).toEqual(new Set([1]));
    expect(logins(fx)).toBe(1);

    fx.clock.advance(275);
    const second = await vendAll(fx, 30);
    expect(new Set(second.map((a) => a.accessToken)).size).toBe(1);
    expect(second[0]?.generation).toBe(2);
    expect(logins(fx)).toBe(2);
    expect(fx.stack.sim.stats().chains[`${fx.conn.clientId}/${fx.conn.username}`]?.authorizations).toEqual({
      code: 0,
      token: 2,
    });
  });

  it("lets the refresher log in ahead for a hot chain, so vends do not wait", async () => {
    fx = await startFixture({ mode: "implicit", realShortSleeps: true });
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(545);
    const refresher = fx.broker();

    const run = await refresher.refresh.run();
    await (refresher.healTrigger as InProcessHealTrigger).settled();

    expect(run.outcomes.heal_triggered).toBe(1);
    expect(logins(fx)).toBe(2);
    fx.clock.advance(30);
    expect((await fx.broker().vend.vend(fx.conn.connectionId, 30)).generation).toBe(2);
    expect(logins(fx)).toBe(2);
  });

  it("refuses an implicit connection whose user another connection already holds", async () => {
    fx = await startFixture();
    const twin = await fx.stack.addConnection("twin", {
      clientId: fx.conn.clientId,
      username: `${fx.conn.username}.twin`,
      mode: "implicit",
    });
    const secret = await storedSecret(fx.broker().deps.secrets, fx.conn);
    fx.stack.writeSecret(twin.secretId, secret);

    const result = await fx.broker().heal.heal("twin");

    expect(result).toMatchObject({ kind: "failed", errorType: "DuplicateChain" });
    expect(await fx.stack.store().get("twin")).toMatchObject({
      status: ChainStatus.ReauthRequired,
      statusReason: "duplicate_user",
    });
  });
});
