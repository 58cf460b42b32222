import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus, LeasePurpose } from "../../lib/chain/chain-record.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { ExactUnavailable, ReauthRequired } from "../../lib/errors.js";
import { MemoryPublisher } from "../../lib/events/event-publishers.js";
import { type DivisionOutcome, ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { forceStatus } from "../support/force-status.js";
import { LEAK_PATTERN } from "../support/leak-guard.js";

/** The simulator's default `CurrentDivision`: what the fixture's user shows at its first consent. */
const FIRST = 123456;
const OTHER = 777777;
/** Heals run explicitly in these tests. */
const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

/** `system/Divisions` calls the simulator answered, by outcome, for one division of the fixture's app. */
function divisionChecks(fx: Fixture, division: number) {
  return fx.stack.sim.stats().api[`${fx.conn.clientId}/${division}`] ?? { ok: 0, no_division_access: 0 };
}

async function seed(fx: Fixture): Promise<void> {
  const code = fx.stack.sim.authorize({
    clientId: fx.conn.clientId,
    username: fx.conn.username,
    redirectUri: fx.conn.redirectUri,
  });
  await fx.broker().onboarding.seed(fx.conn.connectionId, code);
}

/** Exact's REST API fails (5xx) for every division check; everything else is the real client. */
class DivisionsDown extends ExactOAuthClient {
  override async divisionReachable(): Promise<DivisionOutcome> {
    return { kind: "unavailable", status: 503, detail: "GET system/Divisions answered HTTP 503" };
  }
}

describe("the pinned division", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  describe("pinning", () => {
    it("keeps the division given at add: the first consent checks it and vends answer it, whatever Me shows", async () => {
      fx = await startFixture({ seed: false, division: 222222 });
      fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [FIRST, 222222] });

      await seed(fx);

      expect(await fx.record()).toMatchObject({
        status: ChainStatus.Active,
        pinnedDivision: 222222,
        division: 222222,
        divisionPinnedBy: "operator",
      });
      expect((await fx.broker().vend.vend(fx.conn.connectionId, 0)).division).toBe(222222);
      expect(divisionChecks(fx, 222222).ok).toBe(1);
    });

    it("pins the division /current/Me shows at the first consent, without a division check", async () => {
      fx = await startFixture();

      expect(await fx.record()).toMatchObject({
        pinnedDivision: FIRST,
        division: FIRST,
        divisionPinnedBy: "consent",
      });
      expect((await fx.broker().vend.vend(fx.conn.connectionId, 0)).division).toBe(FIRST);
      expect(fx.stack.sim.stats().totals.apiRequests.ok).toBe(0);
    });

    it("pins an item verified before pinning existed to the division it was serving", async () => {
      fx = await startFixture();
      // As an item verified before pinning existed looks: a division, no pin.
      await fx.stack.dynamo.client.send(
        new UpdateItemCommand({
          TableName: fx.stack.tableName,
          Key: marshall({ pk: connectionKey(fx.conn.connectionId) }),
          UpdateExpression: "REMOVE pinnedDivision, divisionPinnedBy",
        }),
      );
      fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [FIRST, OTHER], division: OTHER });
      await forceStatus(fx.stack, fx.conn.connectionId, {
        status: ChainStatus.Broken,
        statusReason: "old_token",
      });

      expect(await fx.broker().heal.heal(fx.conn.connectionId)).toMatchObject({ kind: "healed" });

      expect(await fx.record()).toMatchObject({
        pinnedDivision: FIRST,
        division: FIRST,
        divisionPinnedBy: "consent",
      });
    });
  });

  describe("heals", () => {
    it("a heal after the user's CurrentDivision moved keeps the pinned division, and the vend answers it", async () => {
      fx = await startFixture();
      // The user opened another company in the browser: Exact's CurrentDivision follows it.
      fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [FIRST, OTHER], division: OTHER });
      await forceStatus(fx.stack, fx.conn.connectionId, {
        status: ChainStatus.Broken,
        statusReason: "old_token",
      });

      const healed = await fx.broker().heal.heal(fx.conn.connectionId);

      expect(healed).toEqual({ kind: "healed", generation: 2 });
      expect(await fx.record()).toMatchObject({
        status: ChainStatus.Active,
        division: FIRST,
        pinnedDivision: FIRST,
        divisionPinnedBy: "consent",
      });
      expect((await fx.broker().vend.vend(fx.conn.connectionId, 0)).division).toBe(FIRST);
      expect(divisionChecks(fx, FIRST).ok).toBe(1);
    });

    it("a heal whose user can no longer open the pinned division stops at REAUTH_REQUIRED with an event, keeping the new chain", async () => {
      fx = await startFixture();
      const events = new MemoryPublisher();
      // Access to the pinned division revoked; Exact's CurrentDivision moves to one it can open.
      fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [OTHER] });
      await forceStatus(fx.stack, fx.conn.connectionId, {
        status: ChainStatus.Broken,
        statusReason: "old_token",
      });

      const result = await fx.broker({ events }).heal.heal(fx.conn.connectionId);

      expect(result).toMatchObject({ kind: "failed", errorType: "ReauthRequired" });
      expect(result.kind === "failed" && result.message).toContain(`can no longer open division ${FIRST}`);
      const stopped = await fx.record();
      expect(stopped).toMatchObject({
        status: ChainStatus.ReauthRequired,
        statusReason: "division_unreachable",
        division: FIRST,
        pinnedDivision: FIRST,
        generation: 2,
      });
      expect(stopped.refreshHash).toBe(fx.chainStats().liveRefreshHash);
      expect(stopped.leaseOwner).toBeUndefined();
      expect(events.events.map((e) => [e.type, e.detail.reason])).toEqual([
        ["ReauthRequired", "division_unreachable"],
      ]);
      expect(JSON.stringify(events.events)).not.toMatch(LEAK_PATTERN);
      expect(divisionChecks(fx, FIRST).no_division_access).toBe(1);
      await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 0)).rejects.toThrow(
        /set-division --id/,
      );
      await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 0)).rejects.toThrow(ReauthRequired);
      // An automatic heal leaves it to the operator: no second login.
      expect(await fx.broker().heal.heal(fx.conn.connectionId)).toEqual({
        kind: "skipped",
        why: "needs_operator",
      });
      expect(fx.stack.sim.stats().logins[fx.conn.username]?.success).toBe(1);
    });

    it("a division check Exact does not answer keeps the chain VERIFYING, uncounted, and a later check finishes it", async () => {
      fx = await startFixture();
      fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [FIRST, OTHER], division: OTHER });
      await forceStatus(fx.stack, fx.conn.connectionId, {
        status: ChainStatus.Broken,
        statusReason: "old_token",
      });

      const first = await fx
        .broker({ oauth: new DivisionsDown({ now: fx.clock.now }) })
        .heal.heal(fx.conn.connectionId);

      expect(first).toMatchObject({ kind: "failed", errorType: "ExactUnavailable" });
      const pending = await fx.record();
      expect(pending).toMatchObject({ status: ChainStatus.Verifying, division: FIRST, generation: 2 });
      expect(pending.identityChecks).toBeUndefined();
      await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 0)).rejects.toThrow(ExactUnavailable);
      fx.clock.advance(60);
      const answer = await fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 0);
      expect(answer).toMatchObject({ generation: 2, division: FIRST });
      expect(await fx.record()).toMatchObject({ status: ChainStatus.Active, division: FIRST });
      expect(fx.stack.sim.stats().logins[fx.conn.username]?.success).toBe(1);
    });
  });

  describe("set-division", () => {
    it("pins a division the chain's user can open; vends answer it and later heals keep it", async () => {
      fx = await startFixture();
      fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [FIRST, OTHER] });

      const result = await fx.broker().division.set(fx.conn.connectionId, OTHER);

      expect(result).toMatchObject({ kind: "pinned", division: OTHER, previous: FIRST, checked: true });
      expect(await fx.record()).toMatchObject({
        pinnedDivision: OTHER,
        division: OTHER,
        divisionPinnedBy: "operator",
        status: ChainStatus.Active,
        generation: 1,
      });
      expect((await fx.broker().vend.vend(fx.conn.connectionId, 0)).division).toBe(OTHER);
      await forceStatus(fx.stack, fx.conn.connectionId, {
        status: ChainStatus.Broken,
        statusReason: "old_token",
      });
      await fx.broker().heal.heal(fx.conn.connectionId);
      expect(await fx.record()).toMatchObject({ status: ChainStatus.Active, division: OTHER });
    });

    it("refuses a division the chain's user cannot open and changes nothing", async () => {
      fx = await startFixture();

      const result = await fx.broker().division.set(fx.conn.connectionId, OTHER);

      expect(result).toEqual({
        kind: "unreachable",
        division: OTHER,
        previous: FIRST,
        exactUserName: fx.conn.username,
      });
      expect(await fx.record()).toMatchObject({ pinnedDivision: FIRST, divisionPinnedBy: "consent" });
      expect(divisionChecks(fx, OTHER).no_division_access).toBe(1);
    });

    it("refreshes first when the stored access token has expired", async () => {
      fx = await startFixture();
      fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [FIRST, OTHER] });
      fx.clock.advance(601);

      const result = await fx.broker().division.set(fx.conn.connectionId, OTHER);

      expect(result).toMatchObject({ kind: "pinned", division: OTHER });
      expect(await fx.record()).toMatchObject({ generation: 2, division: OTHER });
    });

    it("resumes a connection stopped at division_unreachable: its stored chain is checked again, with no login", async () => {
      fx = await startFixture();
      fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [OTHER] });
      await forceStatus(fx.stack, fx.conn.connectionId, {
        status: ChainStatus.Broken,
        statusReason: "old_token",
      });
      await fx.broker().heal.heal(fx.conn.connectionId);
      expect((await fx.record()).statusReason).toBe("division_unreachable");

      const result = await fx.broker().division.set(fx.conn.connectionId, OTHER);

      expect(result).toMatchObject({ kind: "pinned", division: OTHER, resumed: true });
      expect(await fx.record()).toMatchObject({ status: ChainStatus.Verifying, division: OTHER });
      const answer = await fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 0);
      expect(answer).toMatchObject({ generation: 2, division: OTHER });
      expect(await fx.record()).toMatchObject({ status: ChainStatus.Active, pinnedDivision: OTHER });
      expect(fx.stack.sim.stats().logins[fx.conn.username]?.success).toBe(1);
    });

    it("waits for an identity check under way (its verified write would set the division it read) and lands after it", async () => {
      fx = await startFixture();
      fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [FIRST, OTHER] });
      const session = await fx.store().acquire({
        record: await fx.record(),
        owner: "a-checker",
        purpose: LeasePurpose.Verify,
        leaseMs: 20_000,
      });
      const pinnedWhileLeased: Array<number | undefined> = [];
      const broker = fx.broker({
        sleep: async (ms) => {
          pinnedWhileLeased.push((await fx.record()).pinnedDivision);
          await session?.release();
          await fx.clock.sleep(ms);
        },
      });

      const result = await broker.division.set(fx.conn.connectionId, OTHER);

      expect(pinnedWhileLeased).toEqual([FIRST]);
      expect(result).toMatchObject({ kind: "pinned", division: OTHER });
      expect(await fx.record()).toMatchObject({ pinnedDivision: OTHER, division: OTHER });
    });

    it("does not wait for a refresh's lease, which never writes the division", async () => {
      fx = await startFixture();
      fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [FIRST, OTHER] });
      const session = await fx.store().acquire({
        record: await fx.record(),
        owner: "a-refresher",
        purpose: LeasePurpose.Refresh,
        leaseMs: 20_000,
      });
      let sleeps = 0;

      const result = await fx
        .broker({
          sleep: async () => {
            sleeps += 1;
          },
        })
        .division.set(fx.conn.connectionId, OTHER);

      expect(result).toMatchObject({ kind: "pinned", division: OTHER });
      expect(sleeps).toBe(0);
      expect(await session?.release()).toBe(true);
    });

    it("pins a never-connected connection's division unchecked; its first consent checks it", async () => {
      fx = await startFixture({ seed: false });

      const result = await fx.broker().division.set(fx.conn.connectionId, OTHER);

      expect(result).toMatchObject({ kind: "pinned", division: OTHER, checked: false });
      await expect(seed(fx)).rejects.toThrow(ReauthRequired);
      expect(await fx.record()).toMatchObject({
        status: ChainStatus.ReauthRequired,
        statusReason: "division_unreachable",
      });
    });
  });
});
