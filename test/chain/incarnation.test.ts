import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { type Fixture, startFixture } from "../support/fixture.js";

/** Seconds from seeding until the fixture's refresh window is open. */
const WINDOW = 572;

/** Rewrites the fixture's item as the broker wrote items before incarnations: no incarnation, tokens in the old context. */
async function writeTheOldWay(fx: Fixture): Promise<void> {
  const { cipher } = fx.broker().deps;
  const record = await fx.record();
  const legacy = { connectionId: record.connectionId };
  const current = { ...legacy, incarnation: record.incarnation ?? "" };
  const access = await cipher.decrypt(record.accessCt ?? "", { ...current, kind: "access" });
  const refresh = await cipher.decrypt(record.refreshCt ?? "", { ...current, kind: "refresh" });
  await fx.stack.dynamo.client.send(
    new UpdateItemCommand({
      TableName: fx.stack.tableName,
      Key: marshall({ pk: connectionKey(record.connectionId) }),
      UpdateExpression: "SET accessCt = :a, refreshCt = :r REMOVE incarnation",
      ExpressionAttributeValues: marshall({
        ":a": await cipher.encrypt(access, { ...legacy, kind: "access" }),
        ":r": await cipher.encrypt(refresh, { ...legacy, kind: "refresh" }),
      }),
    }),
  );
}

describe("incarnations", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("are set when a connection is added", async () => {
    fx = await startFixture();
    expect((await fx.record()).incarnation).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("upgrade an item written before them on its next lease: no login, no decrypt_failed, the chain goes on", async () => {
    fx = await startFixture();
    await writeTheOldWay(fx);
    expect((await fx.record()).incarnation).toBeUndefined();

    const before = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(WINDOW);
    const after = await fx.broker().vend.vend(fx.conn.connectionId, 30);

    const record = await fx.record();
    expect(before.generation).toBe(1);
    expect(after.generation).toBe(2);
    expect(record).toMatchObject({ status: ChainStatus.Active, incarnation: expect.any(String) });
    expect(record.refreshHash).toBe(fx.chainStats().liveRefreshHash);
    expect(fx.stack.sim.stats().logins[fx.conn.username]?.success ?? 0).toBe(0);
    expect((await fx.broker().vend.vend(fx.conn.connectionId, 30)).accessToken).toBe(after.accessToken);
  });

  it("bind ciphertexts: a token sealed for the predecessor of a re-added connection does not decrypt", async () => {
    fx = await startFixture();
    const record = await fx.record();
    const { cipher } = fx.broker().deps;

    await expect(
      cipher.decrypt(record.refreshCt ?? "", {
        connectionId: record.connectionId,
        kind: "refresh",
        incarnation: "00000000-0000-4000-8000-000000000000",
      }),
    ).rejects.toThrow();
  });
});
