import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus, LeasePurpose } from "../../lib/chain/chain-record.js";
import { isLeaseRefused, type Lease } from "../../lib/chain/chain-store.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { ChainBusy } from "../../lib/errors.js";
import { ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import { type Fixture, startFixture } from "../support/fixture.js";

const LEASE_MS = 20_000;
/** These tests stop at BROKEN; healing has tests of its own (test/chain/heal-door.test.ts). */
const NO_HEAL = { healTrigger: { trigger: () => undefined }, vendOptions: { waitMs: 1_000 } };

async function takeLease(fx: Fixture, owner: string): Promise<Lease> {
  const record = await fx.record();
  const lease = await fx.stack.store().acquireLease({
    connectionId: record.connectionId,
    owner,
    purpose: LeasePurpose.Refresh,
    seenGeneration: record.generation,
    nowMs: fx.clock.now(),
    leaseMs: LEASE_MS,
  });
  if (isLeaseRefused(lease)) throw new Error("lease refused");
  return lease;
}

/** What a holder that "died" after its token call had received: Exact rotated the chain for it. */
async function refreshBehindTheBrokersBack(fx: Fixture): Promise<void> {
  const broker = fx.broker();
  const record = await fx.record();
  const refreshToken = await broker.deps.cipher.decrypt(record.refreshCt ?? "", {
    connectionId: record.connectionId,
    kind: "refresh",
  });
  const { clientSecret } = await broker.deps.secrets.get(record.secretId);
  const outcome = await new ExactOAuthClient().refresh(
    record.baseUrl,
    { clientId: record.clientId, clientSecret },
    refreshToken,
    5_000,
  );
  expect(outcome.kind).toBe("tokens");
}

describe("the lease protocol", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  describe("acquire", () => {
    it("refuses while another holder is live, and takes an expired lease with a higher fence", async () => {
      fx = await startFixture();
      const first = await takeLease(fx, "a");
      const store = fx.stack.store();
      const args = {
        connectionId: fx.conn.connectionId,
        owner: "b",
        purpose: LeasePurpose.Refresh,
        seenGeneration: first.generation,
        leaseMs: LEASE_MS,
      };

      expect(isLeaseRefused(await store.acquireLease({ ...args, nowMs: fx.clock.now() }))).toBe(true);
      fx.clock.advance(LEASE_MS / 1000 + 1);
      const second = await store.acquireLease({ ...args, nowMs: fx.clock.now() });

      expect(isLeaseRefused(second)).toBe(false);
      expect((second as Lease).fence).toBe(first.fence + 1);
      expect((second as Lease).previous.inflight).toMatchObject({ owner: "a", purpose: "refresh" });
    });

    it("refuses a holder whose view of the generation is stale", async () => {
      fx = await startFixture();
      const record = await fx.record();
      const refused = await fx.stack.store().acquireLease({
        connectionId: record.connectionId,
        owner: "late",
        purpose: LeasePurpose.Refresh,
        seenGeneration: record.generation - 1,
        nowMs: fx.clock.now(),
        leaseMs: LEASE_MS,
      });
      expect(isLeaseRefused(refused)).toBe(true);
    });

    it("lets exactly one of 20 concurrent acquirers win", async () => {
      fx = await startFixture();
      const record = await fx.record();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          fx.stack.store().acquireLease({
            connectionId: record.connectionId,
            owner: `racer-${i}`,
            purpose: LeasePurpose.Refresh,
            seenGeneration: record.generation,
            nowMs: fx.clock.now(),
            leaseMs: LEASE_MS,
          }),
        ),
      );
      expect(results.filter((r) => !isLeaseRefused(r))).toHaveLength(1);
    });
  });

  describe("a stalled holder", () => {
    it("never overwrites the newer generation committed after its lease expired", async () => {
      fx = await startFixture();
      const stalled = await takeLease(fx, "stalled");
      fx.clock.advance(WINDOW + LEASE_MS / 1000);

      const fresh = await fx.broker().vend.vend(fx.conn.connectionId, 30);
      expect(fresh.generation).toBe(2);
      const result = await fx.stack.store().commitTokens(stalled, {
        refresh: { refreshCt: "stale", refreshHash: "stale", refreshIssuedAtMs: fx.clock.now() },
      });

      expect(result).toBe("superseded");
      const record = await fx.record();
      expect(record.generation).toBe(2);
      expect(record.refreshHash).not.toBe("stale");
      expect((await fx.broker().vend.vend(fx.conn.connectionId, 30)).accessToken).toBe(fresh.accessToken);
    });

    it("still lands its tokens when nobody committed after its lease expired: they are the live chain", async () => {
      fx = await startFixture();
      const stalled = await takeLease(fx, "stalled");
      fx.clock.advance(LEASE_MS / 1000 + 1);
      await takeLease(fx, "second");

      const result = await fx.stack.store().commitTokens(stalled, {
        refresh: { refreshCt: "ct", refreshHash: "rescued", refreshIssuedAtMs: fx.clock.now() },
      });

      expect(result).toBe("committed_after_lease_lost");
      expect(await fx.record()).toMatchObject({ generation: 2, refreshHash: "rescued" });
    });
  });

  describe("a crash", () => {
    it("before the token call: the next vend probes once and the chain goes on", async () => {
      fx = await startFixture();
      await takeLease(fx, "died-before-call");
      fx.clock.advance(WINDOW);

      const answer = await fx.broker().vend.vend(fx.conn.connectionId, 30);

      expect(answer.generation).toBe(2);
      expect((await fx.record()).status).toBe(ChainStatus.Active);
      expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, old_token: 0 });
    });

    it("after Exact answered but before the commit: the probe finds the chain broken and stops", async () => {
      fx = await startFixture();
      fx.clock.advance(WINDOW);
      await takeLease(fx, "died-after-answer");
      await refreshBehindTheBrokersBack(fx);
      fx.clock.advance(LEASE_MS / 1000 + 1);

      await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ChainBusy);
      await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ChainBusy);

      expect(await fx.record()).toMatchObject({ status: ChainStatus.Broken, statusReason: "lost_answer" });
      expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, old_token: 1 });
    });

    it("after the commit: the next vend is served from the table without a token call", async () => {
      fx = await startFixture();
      fx.clock.advance(WINDOW);
      const committed = await fx.broker().vend.vend(fx.conn.connectionId, 30);

      const next = await fx.broker().vend.vend(fx.conn.connectionId, 30);

      expect(next.accessToken).toBe(committed.accessToken);
      expect(fx.chainStats().tokenRequests.refreshed).toBe(1);
    });
  });

  describe("encryption at rest", () => {
    it("refuses a ciphertext copied from another connection, marking the chain BROKEN (decrypt_failed)", async () => {
      fx = await startFixture();
      const other = await fx.stack.addConnection("other");
      await fx.stack.seed(other);
      const otherRecord = await fx.stack.store().get("other");
      await fx.stack.dynamo.client.send(
        new UpdateItemCommand({
          TableName: fx.stack.tableName,
          Key: marshall({ pk: connectionKey(fx.conn.connectionId) }),
          UpdateExpression: "SET refreshCt = :ct",
          ExpressionAttributeValues: marshall({ ":ct": otherRecord?.refreshCt }),
        }),
      );
      fx.clock.advance(WINDOW);

      await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ChainBusy);

      expect(await fx.record()).toMatchObject({ status: ChainStatus.Broken, statusReason: "decrypt_failed" });
      expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
    });

    it("stores no token in plaintext", async () => {
      fx = await startFixture();
      const answer = await fx.broker().vend.vend(fx.conn.connectionId, 30);
      const item = JSON.stringify(await fx.record());
      expect(item).not.toContain(answer.accessToken);
      expect(item).not.toMatch(/sim(AT|RT)!/);
    });
  });
});

/** Seconds from seeding until the fixture's refresh window is open (600 − 30 + 1, plus one). */
const WINDOW = 572;

describe("a slow token call", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("is aborted before the lease ends and treated as an unknown outcome, never resent", async () => {
    fx = await startFixture({ env: { LEASE_SECONDS: "3", HTTP_TIMEOUT_MS: "500" } });
    fx.stack.sim.addFault({ kind: "latency", latencyMs: 1_500, endpoint: "token", count: 1 });
    fx.clock.advance(WINDOW);
    const started = Date.now();

    await fx.broker().vend.vend(fx.conn.connectionId, 30);

    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(Date.now() - started).toBeLessThan(1_400);
    expect(await fx.record()).toMatchObject({ status: ChainStatus.Suspect, generation: 1 });
    expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
  });
});
