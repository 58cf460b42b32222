import { type AttributeValue, GetItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { toItem, toRecord } from "../../lib/chain/chain-item.js";
import { type ChainRecord, ChainSource, ChainStatus, ConnectionMode } from "../../lib/chain/chain-record.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { type Fixture, startFixture } from "../support/fixture.js";

/** Seconds from a token's arrival until its refresh window is open (570 s, plus the broker's margin). */
const WINDOW = 572;

/** The connection's item as DynamoDB holds it, outside the record mapping. */
async function rawItem(fx: Fixture): Promise<Record<string, AttributeValue>> {
  const out = await fx.stack.dynamo.client.send(
    new GetItemCommand({
      TableName: fx.stack.tableName,
      Key: marshall({ pk: connectionKey(fx.conn.connectionId) }),
      ConsistentRead: true,
    }),
  );
  if (!out.Item) throw new Error("the fixture's item is gone");
  return out.Item;
}

/** The type (S, B, …) of each ciphertext attribute. */
function ciphertextTypes(item: Record<string, AttributeValue>): string[] {
  return [item.accessCt, item.refreshCt].map((value) => Object.keys(value ?? {}).join());
}

/** Rewrites the item's ciphertexts as base64 strings, as the broker stored them before binary. */
async function writeAsBase64(fx: Fixture): Promise<void> {
  const item = await rawItem(fx);
  const base64 = (value: AttributeValue | undefined) => Buffer.from(value?.B ?? []).toString("base64");
  await fx.stack.dynamo.client.send(
    new UpdateItemCommand({
      TableName: fx.stack.tableName,
      Key: marshall({ pk: connectionKey(fx.conn.connectionId) }),
      UpdateExpression: "SET accessCt = :a, refreshCt = :r",
      ExpressionAttributeValues: marshall({ ":a": base64(item.accessCt), ":r": base64(item.refreshCt) }),
    }),
  );
}

/** Whether the simulator accepts an access token at /current/Me (only one it issued, exactly). */
async function meAccepts(fx: Fixture, accessToken: string): Promise<boolean> {
  const response = await fetch(`${fx.stack.sim.url}/api/v1/current/Me`, {
    headers: { Authorization: `Bearer ${accessToken}`, Accept: "application/json" },
  });
  return response.status === 200;
}

/** A chain with tokens (stand-in ciphertexts: the mapping never opens them) and a retired chain. */
function recordWithRetiredChain(): ChainRecord {
  const ciphertext = (seed: number) => Buffer.from(Array.from({ length: 300 }, (_, i) => (i * seed) % 256));
  return {
    connectionId: "conn-1",
    clientId: "app",
    baseUrl: "https://start.exactonline.nl",
    redirectUri: "https://broker.example/callback",
    secretId: "secret",
    mode: ConnectionMode.Code,
    incarnation: "inc-1",
    createdAtMs: 1_000,
    status: ChainStatus.Verifying,
    generation: 3,
    leaseFence: 4,
    accessCt: ciphertext(7).toString("base64"),
    refreshCt: ciphertext(11).toString("base64"),
    verification: {
      source: ChainSource.Heal,
      startedAtMs: 2_000,
      statusBefore: ChainStatus.Broken,
      retired: {
        status: ChainStatus.Broken,
        generation: 2,
        accessCt: ciphertext(13).toString("base64"),
        refreshCt: ciphertext(17).toString("base64"),
        refreshHash: "0123456789abcdef",
      },
    },
  };
}

describe("chain item ciphertexts", () => {
  describe("mapping", () => {
    it("stores both ciphertexts as binary, the retired chain's too, and reads them back as base64", () => {
      const record = recordWithRetiredChain();

      const item = toItem(record);

      expect(ciphertextTypes(item)).toEqual(["B", "B"]);
      expect(ciphertextTypes(item.verification?.M?.retired?.M ?? {})).toEqual(["B", "B"]);
      expect(item.accessCt?.B?.length).toBe(300);
      expect(toRecord(item)).toEqual(record);
    });

    it("reads base64 strings stored before binary as they are, the retired chain's too", () => {
      const record = recordWithRetiredChain();
      const legacy = marshall(
        { pk: connectionKey(record.connectionId), ...record },
        { removeUndefinedValues: true },
      );

      expect(ciphertextTypes(legacy)).toEqual(["S", "S"]);
      expect(toRecord(legacy)).toEqual(record);
    });
  });

  describe("in the table", () => {
    let fx: Fixture;
    afterEach(() => fx?.close());

    it("are binary from the seed on and vend the token Exact issued", async () => {
      fx = await startFixture({ sim: { tokenStyle: "long" } });

      const answer = await fx.broker().vend.vend(fx.conn.connectionId, 30);

      const item = await rawItem(fx);
      expect(ciphertextTypes(item)).toEqual(["B", "B"]);
      expect((await fx.record()).accessCt).toBe(Buffer.from(item.accessCt?.B ?? []).toString("base64"));
      expect(await meAccepts(fx, answer.accessToken)).toBe(true);
    });

    it("written before as base64 strings, still vend, refresh, and become binary at the next token write", async () => {
      fx = await startFixture({ sim: { tokenStyle: "long" } });
      const seeded = await fx.broker().vend.vend(fx.conn.connectionId, 30);
      await writeAsBase64(fx);
      expect(ciphertextTypes(await rawItem(fx))).toEqual(["S", "S"]);

      // A new container (empty token cache) decrypts the base64 access token.
      const fromBase64 = await fx.broker().vend.vend(fx.conn.connectionId, 30);
      expect(fromBase64).toMatchObject({ generation: 1, accessToken: seeded.accessToken });
      // Then the base64 refresh token is redeemed: Exact accepts only the one it issued.
      fx.clock.advance(WINDOW);
      const refreshed = await fx.broker().vend.vend(fx.conn.connectionId, 30);

      expect(refreshed.generation).toBe(2);
      expect(await meAccepts(fx, refreshed.accessToken)).toBe(true);
      expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, invalid_grant: 0, old_token: 0 });
      expect(ciphertextTypes(await rawItem(fx))).toEqual(["B", "B"]);
    });
  });
});
