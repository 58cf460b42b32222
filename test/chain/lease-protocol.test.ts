import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus, LeasePurpose } from "../../lib/chain/chain-record.js";
import type { LeaseSession } from "../../lib/chain/lease-session.js";
import { handedOver } from "../../lib/chain/lease-transitions.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { CLOCK_SKEW_BOUND_MS } from "../../lib/chain/timing.js";
import { restoreAfterDeath } from "../../lib/chain/token-refusals.js";
import type { SealedTokens } from "../../lib/chain/token-seal.js";
import type { TokenCipher } from "../../lib/crypto/token-cipher.js";
import { ChainBusy, ClockSkewed, ExactUnavailable } from "../../lib/errors.js";
import { EventReason } from "../../lib/events/broker-events.js";
import { ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import { type Fixture, startFixture } from "../support/fixture.js";

const LEASE_MS = 20_000;
/** Seconds from seeding until the fixture's refresh window is open (600 − 30 + 1, plus one). */
const WINDOW = 572;
/** Past a lease taken now, as every process judges it (the lease's end plus the skew bound). */
const PAST_LEASE = (LEASE_MS + CLOCK_SKEW_BOUND_MS) / 1000 + 1;
/** These tests stop at BROKEN; healing has tests of its own (test/chain/heal-door.test.ts). */
const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

async function takeLease(
  fx: Fixture,
  owner: string,
  purpose: LeasePurpose = LeasePurpose.Refresh,
): Promise<LeaseSession> {
  const session = await fx.store().acquire({ record: await fx.record(), owner, purpose, leaseMs: LEASE_MS });
  if (!session) throw new Error("lease refused");
  return session;
}

function fakeTokens(fx: Fixture, hash: string): SealedTokens {
  return { refresh: { refreshCt: "not-a-ciphertext", refreshHash: hash, refreshIssuedAtMs: fx.clock.now() } };
}

/** What a holder that "died" after its token call had received: Exact rotated the chain for it. */
async function refreshBehindTheBrokersBack(fx: Fixture): Promise<void> {
  const broker = fx.broker();
  const record = await fx.record();
  const refreshToken = await broker.deps.cipher.decrypt(record.refreshCt ?? "", {
    connectionId: record.connectionId,
    kind: "refresh",
    ...(record.incarnation ? { incarnation: record.incarnation } : {}),
  });
  const clientSecret = await broker.deps.secrets.clientSecret(record.secretId);
  const outcome = await new ExactOAuthClient({ now: fx.clock.now }).refresh(
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

      expect(
        await fx.store().acquire({
          record: await fx.record(),
          owner: "b",
          purpose: LeasePurpose.Refresh,
          leaseMs: LEASE_MS,
        }),
      ).toBeUndefined();
      fx.clock.advance(PAST_LEASE);
      const second = await takeLease(fx, "b");

      expect(second.fence).toBe(first.fence + 1);
      expect(second.record.inflight).toMatchObject({ owner: "a", purpose: "refresh" });
    });

    it("judges expiry with the skew bound: a lease just past its end is still refused", async () => {
      fx = await startFixture();
      await takeLease(fx, "a");
      fx.clock.advance(LEASE_MS / 1000 + 1);

      expect(
        await fx.store().acquire({
          record: await fx.record(),
          owner: "b",
          purpose: LeasePurpose.Refresh,
          leaseMs: LEASE_MS,
        }),
      ).toBeUndefined();
    });

    it("refuses a holder whose view of the generation is stale", async () => {
      fx = await startFixture();
      const record = await fx.record();
      const stale = { ...record, generation: record.generation - 1 };

      expect(
        await fx
          .store()
          .acquire({ record: stale, owner: "late", purpose: LeasePurpose.Refresh, leaseMs: LEASE_MS }),
      ).toBeUndefined();
    });

    it("lets exactly one of 20 concurrent acquirers win", async () => {
      fx = await startFixture();
      const record = await fx.record();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          fx
            .store()
            .acquire({ record, owner: `racer-${i}`, purpose: LeasePurpose.Refresh, leaseMs: LEASE_MS }),
        ),
      );
      expect(results.filter((r) => r !== undefined)).toHaveLength(1);
    });

    it("ends on every path: a session whose work throws leaves no lease behind", async () => {
      fx = await startFixture();
      const record = await fx.record();

      await expect(
        fx
          .store()
          .withLease(
            { record, owner: "thrower", purpose: LeasePurpose.Refresh, leaseMs: LEASE_MS },
            async () => {
              throw new Error("boom");
            },
          ),
      ).rejects.toThrow("boom");

      const after = await fx.record();
      expect(after.leaseOwner).toBeUndefined();
      expect(after.inflight).toBeUndefined();
    });
  });

  describe("clock skew", () => {
    it("refuses to take a lease, and calls nobody, when this process's clock is 21 s ahead of DynamoDB's", async () => {
      fx = await startFixture();
      fx.clock.advance(WINDOW);
      const ahead = () => fx.clock.now() + 21_000;

      await expect(
        fx.broker({ now: ahead, sleep: fx.clock.sleep }).vend.vend(fx.conn.connectionId, 30),
      ).rejects.toThrow(ClockSkewed);
      expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
      expect((await fx.record()).leaseOwner).toBeUndefined();
    });

    it("keeps a process 2 s ahead (inside the bound) off a lease that has 1 s left", async () => {
      fx = await startFixture();
      fx.clock.advance(WINDOW);
      await takeLease(fx, "holder");
      fx.clock.advance(LEASE_MS / 1000 - 1);
      const ahead = () => fx.clock.now() + 2_000;

      await expect(
        fx
          .broker({ now: ahead, sleep: fx.clock.sleep, vendOptions: { waitMs: 100 } })
          .vend.vend(fx.conn.connectionId, 30),
      ).rejects.toThrow(ChainBusy);
      expect((await fx.record()).leaseOwner).toBe("holder");
      expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
    });
  });

  describe("a stalled holder", () => {
    it("never overwrites the newer generation committed after its lease expired", async () => {
      fx = await startFixture();
      const stalled = await takeLease(fx, "stalled");
      fx.clock.advance(WINDOW + PAST_LEASE);

      const fresh = await fx.broker().vend.vend(fx.conn.connectionId, 30);
      expect(fresh.generation).toBe(2);
      const result = await stalled.commitRefresh({
        tokens: fakeTokens(fx, "stale"),
        status: ChainStatus.Active,
        dueAtMs: 0,
      });

      expect(result).toBe("superseded");
      expect(await fx.record()).toMatchObject({ generation: 2 });
      expect((await fx.record()).refreshHash).not.toBe("stale");
      expect((await fx.broker().vend.vend(fx.conn.connectionId, 30)).accessToken).toBe(fresh.accessToken);
    });

    it("still lands its tokens when nobody committed after its lease expired: they are the live chain", async () => {
      fx = await startFixture();
      const stalled = await takeLease(fx, "stalled");
      fx.clock.advance(PAST_LEASE);
      await takeLease(fx, "second");

      const result = await stalled.commitRefresh({
        tokens: fakeTokens(fx, "rescued"),
        status: ChainStatus.Active,
        dueAtMs: 0,
      });

      expect(result).toBe("committed_after_lease_lost");
      expect(await fx.record()).toMatchObject({ generation: 2, refreshHash: "rescued" });
    });

    describe("of a chain awaiting its identity check, after a probe found it dead", () => {
      const note = { source: "seed", startedAtMs: 1_000, statusBefore: ChainStatus.New } as const;

      /** The seeded chain as a seed leaves it before /current/Me (VERIFYING with its note); a refresh stalls on it, a probe then finds it dead. */
      async function diedUnderStalledRefresh(fx: Fixture): Promise<LeaseSession> {
        await fx.stack.dynamo.client.send(
          new UpdateItemCommand({
            TableName: fx.stack.tableName,
            Key: marshall({ pk: connectionKey(fx.conn.connectionId) }),
            UpdateExpression: "SET #status = :verifying, verification = :note",
            ExpressionAttributeNames: { "#status": "status" },
            ExpressionAttributeValues: marshall({ ":verifying": ChainStatus.Verifying, ":note": note }),
          }),
        );
        const stalled = await takeLease(fx, "stalled");
        fx.clock.advance(PAST_LEASE);
        const prober = await takeLease(fx, "prober", LeasePurpose.Probe);
        const back = restoreAfterDeath(prober.record, EventReason.LostAnswer);
        if (!back) throw new Error("a VERIFYING chain's death gives nothing back");
        expect(
          await prober.finish(handedOver({ ...back, diedGeneration: prober.generation }, fx.clock.now())),
        ).toBe(true);
        expect(await fx.record()).toMatchObject({
          status: ChainStatus.New,
          generation: 2,
          diedGeneration: 1,
        });
        return stalled;
      }

      it("still lands the stalled refresh, its verification note with it: that refresh made the probe fail", async () => {
        fx = await startFixture();
        const stalled = await diedUnderStalledRefresh(fx);

        const result = await stalled.commitRefresh({
          tokens: fakeTokens(fx, "rescued"),
          status: ChainStatus.Verifying,
          dueAtMs: 0,
        });

        expect(result).toBe("committed_after_lease_lost");
        expect(await fx.record()).toMatchObject({
          generation: 3,
          status: ChainStatus.Verifying,
          refreshHash: "rescued",
          verification: note,
        });
      });

      it("does not land it once the tokens changed again after the death", async () => {
        fx = await startFixture();
        const stalled = await diedUnderStalledRefresh(fx);
        const next = await takeLease(fx, "next");
        expect(
          await next.commitRefresh({
            tokens: fakeTokens(fx, "later"),
            status: ChainStatus.Active,
            dueAtMs: 0,
          }),
        ).toBe("committed");

        const result = await stalled.commitRefresh({
          tokens: fakeTokens(fx, "rescued"),
          status: ChainStatus.Verifying,
          dueAtMs: 0,
        });

        expect(result).toBe("superseded");
        expect(await fx.record()).toMatchObject({ generation: 3, refreshHash: "later" });
      });
    });

    it("never lands its rescue while a login holds the lease: the login's new chain wins, and its lease ends", async () => {
      fx = await startFixture();
      const stalled = await takeLease(fx, "stalled-refresh");
      fx.clock.advance(PAST_LEASE);
      const healer = await takeLease(fx, "healer", LeasePurpose.Heal);
      await healer.renew(LeasePurpose.Heal, LEASE_MS, { status: ChainStatus.Healing });

      const rescue = await stalled.commitRefresh({
        tokens: fakeTokens(fx, "rescue"),
        status: ChainStatus.Active,
        dueAtMs: 0,
      });
      const stored = await healer.storeStartedChain({
        tokens: fakeTokens(fx, "login"),
        note: { source: "heal", startedAtMs: fx.clock.now(), statusBefore: ChainStatus.Broken },
        leaseMs: LEASE_MS,
      });
      await healer.end();

      expect(rescue).toBe("superseded");
      expect(stored).toBe(true);
      expect(await fx.record()).toMatchObject({
        refreshHash: "login",
        generation: 2,
        status: ChainStatus.Verifying,
      });
      expect((await fx.record()).leaseOwner).toBeUndefined();
    });

    it("cannot write to a connection removed and added again under the same ID", async () => {
      fx = await startFixture();
      const stalled = await takeLease(fx, "stalled");
      const before = await fx.record();
      await fx.store().removeConnection(before);
      const { incarnation: _old, ...config } = before;
      await fx.store().addConnection(
        {
          connectionId: config.connectionId,
          clientId: config.clientId,
          baseUrl: config.baseUrl,
          redirectUri: config.redirectUri,
          secretId: config.secretId,
          mode: config.mode,
        },
        fx.clock.now(),
      );
      const code = fx.stack.sim.authorize({
        clientId: fx.conn.clientId,
        username: fx.conn.username,
        redirectUri: fx.conn.redirectUri,
      });
      await fx.broker().onboarding.seed(fx.conn.connectionId, code);
      const readded = await fx.record();

      const commit = await stalled.commitRefresh({
        tokens: fakeTokens(fx, "predecessor"),
        status: ChainStatus.Active,
        dueAtMs: 0,
      });

      expect(readded.incarnation).not.toBe(before.incarnation);
      expect(commit).toBe("superseded");
      expect(await fx.record()).toMatchObject({
        refreshHash: readded.refreshHash,
        generation: readded.generation,
      });
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
      fx.clock.advance(PAST_LEASE);

      await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ChainBusy);
      await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ChainBusy);

      expect(await fx.record()).toMatchObject({ status: ChainStatus.Broken, statusReason: "lost_answer" });
      expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, old_token: 1 });
    });
  });

  describe("persist first", () => {
    it("stores Exact's answer although KMS fails right after the token call: key material was prepared before it", async () => {
      fx = await startFixture();
      fx.clock.advance(WINDOW);
      const real = fx.broker().deps.cipher;
      let kmsDown = false;
      const cipher: TokenCipher = {
        encrypt: (plaintext, binding) =>
          kmsDown ? Promise.reject(new Error("KMS throttled")) : real.encrypt(plaintext, binding),
        decrypt: (ciphertext, binding) => real.decrypt(ciphertext, binding),
        prepare: (chain) => (kmsDown ? Promise.reject(new Error("KMS throttled")) : real.prepare(chain)),
      };
      const oauth = new ExactOAuthClient({ now: fx.clock.now });
      const refresh = oauth.refresh.bind(oauth);
      oauth.refresh = async (...args) => {
        const outcome = await refresh(...args);
        kmsDown = true;
        return outcome;
      };

      const answer = await fx.broker({ cipher, oauth }).vend.vend(fx.conn.connectionId, 30);

      expect(answer.generation).toBe(2);
      expect(await fx.record()).toMatchObject({ generation: 2, status: ChainStatus.Active });
      expect((await fx.record()).refreshHash).toBe(fx.chainStats().liveRefreshHash);
    });

    it("starts no token call when the key material cannot be prepared (KMS down before the call)", async () => {
      fx = await startFixture();
      fx.clock.advance(WINDOW);
      const real = fx.broker().deps.cipher;
      const cipher: TokenCipher = {
        ...real,
        prepare: () => Promise.reject(new Error("KMS down")),
        decrypt: real.decrypt,
        encrypt: real.encrypt,
      };

      await expect(fx.broker({ cipher }).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow("KMS down");

      expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
      expect(await fx.record()).toMatchObject({ generation: 1, status: ChainStatus.Active });
      expect((await fx.record()).leaseOwner).toBeUndefined();
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

describe("a slow token call", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("is aborted before the lease ends and treated as an unknown outcome, never resent", async () => {
    fx = await startFixture({ env: { LEASE_SECONDS: "6", HTTP_TIMEOUT_MS: "500" } });
    fx.stack.sim.addFault({ kind: "latency", latencyMs: 1_500, endpoint: "token", count: 1 });
    fx.clock.advance(WINDOW);
    const started = Date.now();

    await expect(fx.broker().vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ExactUnavailable);

    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(Date.now() - started).toBeLessThan(1_400);
    expect(await fx.record()).toMatchObject({ status: ChainStatus.Suspect, generation: 1 });
    expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
  });
});
