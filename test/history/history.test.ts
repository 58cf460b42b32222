import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus, LeasePurpose } from "../../lib/chain/chain-record.js";
import { HistoryDoor, HistoryOutcome } from "../../lib/chain/history-entry.js";
import { ChainBusy, ExactUnavailable } from "../../lib/errors.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { historyItem, historyWrites, outcomes, recordingDynamo } from "./history-support.js";

/** Seconds after a token's arrival when Exact's refresh window is open (600 − 30 + margin). */
const WINDOW = 572;
const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};
const CALLER = "arn:aws:sts::123456789012:assumed-role/consumer/session-1";
const DAY_SECONDS = 86_400;

describe("a connection's history", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  describe("entries", () => {
    it("records a seed: the chain started and verified, door seed, in the history item of generation 1", async () => {
      fx = await startFixture();

      const item = await historyItem(fx, 1);

      expect(await outcomes(fx)).toEqual(["1 verified", "1 chain_started"]);
      expect(item?.entries.map((e) => [e.outcome, e.door, e.purpose, e.status])).toEqual([
        [HistoryOutcome.ChainStarted, HistoryDoor.Seed, LeasePurpose.Onboard, ChainStatus.Verifying],
        [HistoryOutcome.Verified, HistoryDoor.Seed, LeasePurpose.Verify, ChainStatus.Active],
      ]);
      expect(item?.entries[0]?.refreshHash).toBe((await fx.record()).refreshHash);
    });

    it("records a vend's refresh with its caller and the new refresh token's hash", async () => {
      fx = await startFixture();
      fx.clock.advance(WINDOW);

      const answer = await fx.broker().vend.vend(fx.conn.connectionId, 30, { caller: CALLER });

      expect(answer.generation).toBe(2);
      const record = await fx.record();
      const item = await historyItem(fx, 2);
      expect(item?.entries.at(-1)).toMatchObject({
        generation: 2,
        door: HistoryDoor.Vend,
        purpose: LeasePurpose.Refresh,
        outcome: HistoryOutcome.Refreshed,
        caller: CALLER,
        refreshHash: record.refreshHash,
        status: ChainStatus.Active,
      });
      expect(record.refreshHash).toBe(fx.chainStats().liveRefreshHash);
    });

    it("records the scheduled refresh under door refresh, with no caller", async () => {
      fx = await startFixture();
      await fx.broker().vend.vend(fx.conn.connectionId, 0);
      fx.clock.advance(WINDOW);

      await fx.broker().refresh.run({ horizonMs: 1_000 });

      const [latest] = await fx.store().history.read(await fx.record(), 1);
      expect(latest).toMatchObject({
        generation: 2,
        door: HistoryDoor.Refresh,
        outcome: HistoryOutcome.Refreshed,
      });
      expect(latest?.caller).toBeUndefined();
    });

    it("records a probe that proves the chain alive: suspect, then refreshed under purpose probe", async () => {
      fx = await startFixture();
      fx.stack.sim.addFault({ kind: "reset", endpoint: "token", count: 1 });
      fx.clock.advance(WINDOW);
      await expect(fx.broker().vend.vend(fx.conn.connectionId, 30, { caller: CALLER })).rejects.toThrow(
        ExactUnavailable,
      );
      fx.clock.advance(3);

      await fx.broker().vend.vend(fx.conn.connectionId, 30);

      expect(await outcomes(fx)).toEqual([
        "2 refreshed",
        "1 suspect (lost_answer)",
        "1 verified",
        "1 chain_started",
      ]);
      const [refreshed, suspect] = await fx.store().history.read(await fx.record(), 2);
      expect(refreshed?.purpose).toBe(LeasePurpose.Probe);
      expect(suspect).toMatchObject({
        caller: CALLER,
        purpose: LeasePurpose.Refresh,
        status: ChainStatus.Suspect,
      });
    });

    it("records a break, a failed login and the heal's login: probe, broken, login_failed, chain started, verified", async () => {
      fx = await startFixture();
      fx.stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", count: 1 });
      fx.clock.advance(WINDOW);
      await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ExactUnavailable);
      fx.clock.advance(3);
      await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ChainBusy);
      // The login works; Exact fails the code exchange that follows it.
      fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "token", count: 1 });
      expect(await fx.broker().heal.heal(fx.conn.connectionId)).toMatchObject({ kind: "failed" });
      fx.clock.advance(300);

      // An operator's heal (`exact-broker heal`) after the failure: its entries name the operator.
      const healed = await fx.broker().heal.heal(fx.conn.connectionId, { operator: true });

      expect(healed).toMatchObject({ kind: "healed", generation: 2 });

      expect(await outcomes(fx)).toEqual([
        "2 verified",
        "2 chain_started",
        "1 login_failed (login_failed)",
        "1 broken (lost_answer)",
        "1 suspect (lost_answer)",
        "1 verified",
        "1 chain_started",
      ]);
      const entries = await fx.store().history.read(await fx.record(), 10);
      expect(entries.map((e) => [e.outcome, e.door, e.purpose ?? null])).toEqual([
        [HistoryOutcome.Verified, HistoryDoor.Heal, LeasePurpose.Verify],
        [HistoryOutcome.ChainStarted, HistoryDoor.Heal, LeasePurpose.Heal],
        [HistoryOutcome.LoginFailed, HistoryDoor.Heal, LeasePurpose.Heal],
        [HistoryOutcome.Broken, HistoryDoor.Vend, LeasePurpose.Probe],
        [HistoryOutcome.Suspect, HistoryDoor.Vend, LeasePurpose.Refresh],
        [HistoryOutcome.Verified, HistoryDoor.Seed, LeasePurpose.Verify],
        [HistoryOutcome.ChainStarted, HistoryDoor.Seed, LeasePurpose.Onboard],
      ]);
      expect(entries[0]?.refreshHash).toBe(fx.chainStats().liveRefreshHash);
      expect(entries.map((e) => e.caller ?? null)).toEqual([
        "operator",
        "operator",
        null,
        null,
        null,
        null,
        null,
      ]);
    });

    it("records a consent through the connect door", async () => {
      fx = await startFixture({ seed: false });
      const code = fx.stack.sim.authorize({
        clientId: fx.conn.clientId,
        username: fx.conn.username,
        redirectUri: fx.conn.redirectUri,
      });

      await fx.broker().onboarding.seed(fx.conn.connectionId, code, { door: HistoryDoor.Connect });

      const entries = await fx.store().history.read(await fx.record(), 10);
      expect(entries.map((e) => [e.generation, e.outcome, e.door])).toEqual([
        [1, HistoryOutcome.Verified, HistoryDoor.Connect],
        [1, HistoryOutcome.ChainStarted, HistoryDoor.Connect],
      ]);
    });

    it("records a hand-over on both connections: handed_over here, received there, each naming the other", async () => {
      fx = await startFixture();
      const other = await fx.stack.addConnection(`${fx.conn.connectionId}-b`, {
        clientId: fx.conn.clientId,
        username: `other-${fx.conn.username}`,
      });
      // A code for the fixture's user, used on the other connection: Exact starts that user's chain.
      const code = fx.stack.sim.authorize({
        clientId: fx.conn.clientId,
        username: fx.conn.username,
        redirectUri: other.redirectUri,
      });

      const result = await fx.broker().onboarding.seed(other.connectionId, code);

      expect(result).toMatchObject({
        connectionId: fx.conn.connectionId,
        redirectedFrom: other.connectionId,
      });
      expect(await outcomes(fx)).toEqual(["2 received", "1 verified", "1 chain_started"]);
      expect(await outcomes(fx, other.connectionId)).toEqual(["2 handed_over", "1 chain_started"]);
      const [received] = await fx.store().history.read(await fx.record(), 1);
      expect(received).toMatchObject({
        door: HistoryDoor.Seed,
        peer: other.connectionId,
        status: ChainStatus.Active,
      });
      const otherRecord = await fx.store().get(other.connectionId);
      const [handed] = otherRecord ? await fx.store().history.read(otherRecord, 1) : [];
      expect(handed).toMatchObject({ peer: fx.conn.connectionId, status: ChainStatus.New });
      expect((await historyItem(fx, 2))?.entries.map((e) => e.outcome)).toContain(HistoryOutcome.Received);
    });
  });

  describe("cost", () => {
    it("makes no request for history on a cached or an uncached vend that does not advance the chain", async () => {
      fx = await startFixture();
      const dynamo = recordingDynamo(fx);
      const broker = fx.broker({ dynamo: dynamo.client });
      const before = await fx.record();

      await broker.vend.vend(fx.conn.connectionId, 30);
      const uncached = [...dynamo.sent];
      await broker.vend.vend(fx.conn.connectionId, 30);
      const cold = fx.broker({ dynamo: dynamo.client });
      await cold.vend.vend(fx.conn.connectionId, 30);

      // Uncached: one read and the generation's one hotness write; cached: nothing; the next
      // container: one read (this generation is hot already).
      expect(uncached.map((r) => r.command)).toEqual(["GetItem", "UpdateItem"]);
      expect(dynamo.sent.map((r) => r.command)).toEqual(["GetItem", "UpdateItem", "GetItem"]);
      expect((await fx.record()).history).toEqual(before.history);
    });

    it("makes one history write for a refresh, after its commit", async () => {
      fx = await startFixture();
      const dynamo = recordingDynamo(fx);
      fx.clock.advance(WINDOW);

      await fx.broker({ dynamo: dynamo.client }).vend.vend(fx.conn.connectionId, 30);

      const record = await fx.record();
      expect(historyWrites(dynamo.sent)).toEqual([`HIST#${fx.conn.connectionId}#${record.incarnation}#2`]);
      // On the chain's item: the read, the acquire and the commit (which carries the entry); the
      // history item comes last, after the lease has ended.
      const onChain = dynamo.sent.filter((r) => r.pk === `CONN#${fx.conn.connectionId}`);
      expect(onChain.map((r) => r.command)).toEqual(["GetItem", "UpdateItem", "UpdateItem"]);
      expect(dynamo.sent.at(-1)?.pk).toMatch(/^HIST#/);
    });
  });

  describe("across a crash", () => {
    it("writes a generation's entries with the next commit when its own history write never happened", async () => {
      fx = await startFixture();
      const dynamo = recordingDynamo(fx);
      dynamo.failHistoryWrites = true;
      fx.clock.advance(WINDOW);
      await fx.broker({ dynamo: dynamo.client }).vend.vend(fx.conn.connectionId, 30, { caller: CALLER });
      expect(await historyItem(fx, 2)).toBeUndefined();
      // Not lost: the commit itself carried the entry onto the chain item.
      expect((await fx.record()).history?.map((e) => [e.generation, e.outcome])).toContainEqual([
        2,
        HistoryOutcome.Refreshed,
      ]);

      fx.clock.advance(WINDOW);
      await fx.broker().vend.vend(fx.conn.connectionId, 30);

      const next = await historyItem(fx, 3);
      expect(next?.entries.map((e) => [e.generation, e.outcome, e.caller ?? null])).toEqual([
        [1, HistoryOutcome.ChainStarted, null],
        [1, HistoryOutcome.Verified, null],
        [2, HistoryOutcome.Refreshed, CALLER],
        [3, HistoryOutcome.Refreshed, null],
      ]);
      // The chain item keeps only what the next commit must write again.
      expect((await fx.record()).history?.map((e) => e.generation)).toEqual([2, 3]);
      expect(await outcomes(fx)).toEqual(["3 refreshed", "2 refreshed", "1 verified", "1 chain_started"]);
    });
  });

  describe("retention", () => {
    it("stamps each history item with the TTL attribute, HISTORY_DAYS after the write (epoch seconds)", async () => {
      fx = await startFixture({ env: { HISTORY_DAYS: "7" } });
      fx.clock.advance(WINDOW);

      await fx.broker().vend.vend(fx.conn.connectionId, 30);
      const writtenSec = Math.floor(fx.clock.now() / 1000);

      const item = await historyItem(fx, 2);
      expect(item?.expiresAtEpochSec).toBeGreaterThanOrEqual(writtenSec - 2 + 7 * DAY_SECONDS);
      expect(item?.expiresAtEpochSec).toBeLessThanOrEqual(writtenSec + 7 * DAY_SECONDS);
    });

    it("leaves expired items out (dynalite keeps them: it has no TTL)", async () => {
      fx = await startFixture({ env: { HISTORY_DAYS: "1" } });
      for (let i = 0; i < 2; i += 1) {
        fx.clock.advance(WINDOW);
        await fx.broker().vend.vend(fx.conn.connectionId, 30);
      }
      expect(await outcomes(fx)).toEqual(["3 refreshed", "2 refreshed", "1 verified", "1 chain_started"]);

      fx.clock.advance(2 * DAY_SECONDS);

      // Items 1 to 3 are still in dynalite, but past their TTL: only what the chain item carries.
      expect(await historyItem(fx, 1)).toBeDefined();
      expect(await outcomes(fx)).toEqual(["3 refreshed", "2 refreshed"]);
    });
  });
});
