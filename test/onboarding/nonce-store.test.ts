import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChainTable, nonceKey } from "../../lib/chain/table-definition.js";
import { type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";
import { newNonce } from "../../lib/onboarding/link-signing.js";
import { NONCE_RETENTION_SECONDS, NonceMarker, NonceStore } from "../../lib/onboarding/nonce-store.js";

describe("NonceStore", () => {
  let dynamo: LocalDynamo;
  let tableName: string;
  let store: NonceStore;
  beforeAll(async () => {
    dynamo = await startDynalite();
    tableName = await dynamo.createTable();
    store = new NonceStore({ tableName, client: dynamo.client });
  });
  afterAll(() => dynamo.close());

  const claim = (nonce: string, marker: NonceMarker = NonceMarker.Opened) =>
    store.claim({ nonce, marker, connectionId: "conn-a", validUntilEpochSec: 1_800_000_000, nowMs: 1 });

  describe("claim", () => {
    it("succeeds once and refuses every later claim of the same marker", async () => {
      const nonce = newNonce();

      expect(await claim(nonce)).toBe(true);
      expect(await claim(nonce)).toBe(false);
      expect(await claim(nonce)).toBe(false);
    });

    it("keeps 'opened' and 'completed' apart: each can be claimed once", async () => {
      const nonce = newNonce();

      expect(await claim(nonce, NonceMarker.Opened)).toBe(true);
      expect(await claim(nonce, NonceMarker.Completed)).toBe(true);
      expect(await claim(nonce, NonceMarker.Completed)).toBe(false);
    });

    it("lets exactly one of 20 concurrent claims win", async () => {
      const nonce = newNonce();

      const results = await Promise.all(Array.from({ length: 20 }, () => claim(nonce)));

      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it("is seen by isClaimed at once, per marker", async () => {
      const nonce = newNonce();
      expect(await store.isClaimed(nonce, NonceMarker.Opened)).toBe(false);

      await claim(nonce, NonceMarker.Opened);

      expect(await store.isClaimed(nonce, NonceMarker.Opened)).toBe(true);
      expect(await store.isClaimed(nonce, NonceMarker.Completed)).toBe(false);
    });

    it("writes a NONCE# item with a TTL in epoch seconds after the validity ends", async () => {
      const nonce = newNonce();
      await claim(nonce, NonceMarker.Completed);

      const out = await dynamo.client.send(
        new GetItemCommand({
          TableName: tableName,
          Key: marshall({ pk: nonceKey(`${nonce}#completed`) }),
          ConsistentRead: true,
        }),
      );

      expect(unmarshall(out.Item ?? {})).toEqual({
        pk: `NONCE#${nonce}#completed`,
        marker: "completed",
        connectionId: "conn-a",
        claimedAtMs: 1,
        [ChainTable.ttlAttribute]: 1_800_000_000 + NONCE_RETENTION_SECONDS,
      });
    });
  });
});
