import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { connectionKey } from "../../../lib/chain/table-definition.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

/** As incarnation.test.ts: the item as the broker wrote it before incarnations. */
async function writeTheOldWay(fx: Fixture, connectionId: string): Promise<void> {
  const { cipher } = fx.broker().deps;
  const record = await fx.stack.store().get(connectionId);
  if (!record) throw new Error("gone");
  const legacy = { connectionId };
  const current = { ...legacy, incarnation: record.incarnation ?? "" };
  const access = await cipher.decrypt(record.accessCt ?? "", { ...current, kind: "access" });
  const refresh = await cipher.decrypt(record.refreshCt ?? "", { ...current, kind: "refresh" });
  await fx.stack.dynamo.client.send(
    new UpdateItemCommand({
      TableName: fx.stack.tableName,
      Key: marshall({ pk: connectionKey(connectionId) }),
      UpdateExpression: "SET accessCt = :a, refreshCt = :r REMOVE incarnation",
      ExpressionAttributeValues: marshall({
        ":a": await cipher.encrypt(access, { ...legacy, kind: "access" }),
        ":r": await cipher.encrypt(refresh, { ...legacy, kind: "refresh" }),
      }),
    }),
  );
}

/**
 * IdentityCheck#handTo refuses a target without an incarnation (`if (!target?.incarnation) return
 * false`) and does not upgrade it (withIncarnation), so a seed of a user whose guard belongs to a
 * legacy connection that nothing leases stays VERIFYING: the live chain Exact started is never
 * served, while the legacy owner keeps the dead chain. When a consumer finally vends the owner,
 * the owner breaks and logs in again: the stored live chain is lost and a login is spent.
 */
describe("a hand-over to a connection written before incarnations", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("lands on the legacy owner without a login", async () => {
    fx = await startFixture({ seed: false });
    const username = "shared@example.com";
    const clientId = "app-shared";
    const b = await fx.stack.addConnection("conn-b", { username, clientId });
    const a = await fx.stack.addConnection("conn-a", { username, clientId });
    await fx.stack.seed(b);
    await writeTheOldWay(fx, "conn-b"); // written before this change, idle since

    fx.clock.advance(60);
    const code = fx.stack.sim.authorize({ clientId, username, redirectUri: a.redirectUri });
    const seeded = await fx
      .broker()
      .onboarding.seed("conn-a", code)
      .then(
        (r) => `handed to ${r.connectionId}`,
        (e: Error) => `${e.name}: ${e.message}`,
      );
    for (let i = 0; i < 5; i++) {
      fx.clock.advance(60);
      await fx.broker(NO_HEAL).refresh.run();
    }
    const aNow = await fx.stack.store().get("conn-a");
    expect
      .soft(aNow?.status, `A after the seed (${seeded}) and 5 scheduled runs`)
      .not.toBe(ChainStatus.Verifying);

    // A consumer vends B (past its token's life): B refreshes its dead chain, breaks, and the vend's
    // in-process heal trigger logs in (the vend waits for it).
    fx.clock.advance(600);
    await fx
      .broker()
      .vend.vend("conn-b", 30)
      .catch(() => undefined);
    const logins = fx.stack.sim.stats().logins[username]?.success ?? 0;
    expect(logins, "a login was spent although the live chain was stored on A").toBe(0);
  });
});
