import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus, LeasePurpose } from "../../lib/chain/chain-record.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { ChainBusy } from "../../lib/errors.js";
import { type Fixture, startFixture } from "../support/fixture.js";

/** Seconds from seeding until the fixture's refresh window is open. */
const WINDOW = 572;
const NO_HEAL = { healTrigger: { trigger: () => undefined, handedOff: async () => undefined } };

describe("every door knows its deadline", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  describe("the scheduled refresh", () => {
    it("does not sleep for a window that opens after its deadline, nor start that chain's token call", async () => {
      fx = await startFixture();
      await fx.broker().vend.vend(fx.conn.connectionId, 0);
      fx.clock.advance(WINDOW - 40);
      const startMs = fx.clock.now();

      const run = await fx.broker(NO_HEAL).refresh.run({ deadlineMs: startMs + 30_000 });

      expect(fx.clock.now() - startMs).toBeLessThan(30_000);
      expect(run.outcomes.refreshed).toBe(0);
      expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
    });

    it("defers a due chain when a whole lease's work could not end before its deadline", async () => {
      fx = await startFixture();
      await fx.broker().vend.vend(fx.conn.connectionId, 0);
      fx.clock.advance(WINDOW);

      const run = await fx.broker(NO_HEAL).refresh.run({ deadlineMs: fx.clock.now() + 10_000 });

      expect(run.outcomes).toMatchObject({ refreshed: 0, deferred: 1 });
      expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
      expect((await fx.record()).leaseOwner).toBeUndefined();
    });

    it("refreshes the same chain when the deadline leaves room for its lease", async () => {
      fx = await startFixture();
      await fx.broker().vend.vend(fx.conn.connectionId, 0);
      fx.clock.advance(WINDOW);

      const run = await fx.broker(NO_HEAL).refresh.run({ deadlineMs: fx.clock.now() + 85_000 });

      expect(run.outcomes.refreshed).toBe(1);
      expect(fx.chainStats().tokenRequests.refreshed).toBe(1);
    });
  });

  describe("a vend", () => {
    it("stops waiting for another holder before its invocation's deadline", async () => {
      fx = await startFixture();
      fx.clock.advance(WINDOW);
      await fx.store().acquire({
        record: await fx.record(),
        owner: "holder",
        purpose: LeasePurpose.Refresh,
        leaseMs: 20_000,
      });
      const startMs = fx.clock.now();

      await expect(
        fx.broker().vend.vend(fx.conn.connectionId, 30, { deadlineMs: startMs + 2_000 }),
      ).rejects.toThrow(ChainBusy);

      expect(fx.clock.now() - startMs).toBeLessThanOrEqual(2_000);
    });

    it("starts no token call its invocation could not wait for", async () => {
      fx = await startFixture();
      fx.clock.advance(WINDOW);

      await expect(
        fx.broker().vend.vend(fx.conn.connectionId, 30, { deadlineMs: fx.clock.now() + 3_000 }),
      ).rejects.toThrow(ChainBusy);

      expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
      expect(await fx.record()).toMatchObject({ status: ChainStatus.Active, generation: 1 });
      expect((await fx.record()).leaseOwner).toBeUndefined();
    });
  });

  describe("a heal", () => {
    it("starts no login its invocation could not finish, and leaves the chain as it found it", async () => {
      fx = await startFixture();
      await fx.stack.dynamo.client.send(
        new UpdateItemCommand({
          TableName: fx.stack.tableName,
          Key: marshall({ pk: connectionKey(fx.conn.connectionId) }),
          UpdateExpression: "SET #status = :broken",
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: marshall({ ":broken": ChainStatus.Broken }),
        }),
      );

      await expect(
        fx.broker().heal.heal(fx.conn.connectionId, { deadlineMs: fx.clock.now() + 20_000 }),
      ).rejects.toThrow(ChainBusy);

      expect(fx.stack.sim.stats().logins[fx.conn.username]?.success ?? 0).toBe(0);
      expect(await fx.record()).toMatchObject({ status: ChainStatus.Broken });
      expect((await fx.record()).leaseOwner).toBeUndefined();
    });
  });
});
