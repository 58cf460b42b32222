import { type DynamoDBClient, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus, LeasePurpose } from "../../lib/chain/chain-record.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { keepaliveDueAtMs } from "../../lib/chain/timing.js";
import { ChainBusy } from "../../lib/errors.js";
import { localDynamoClient } from "../../lib/local/dynalite.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { MemoryRefreshQueue } from "../support/memory-refresh-queue.js";

/** Seconds from a chain's start until its refresh window is open (the token then has 28 s left). */
const WINDOW_S = 572;
/** Vends that stop at BROKEN: nothing heals the chain behind the test's back. */
const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

/**
 * A DynamoDB client for the fixture's table that runs `meanwhile` once, just before the first
 * UpdateItem on the connection's item: the worker has read the chain and decided, its write is
 * on its way. `meanwhile` uses other clients, so its own writes pass untouched.
 */
function interleaved(fx: Fixture, meanwhile: () => Promise<void>): DynamoDBClient {
  const client = localDynamoClient(fx.stack.dynamo.endpoint);
  let pending = true;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { Key?: { pk?: { S?: string } } };
      if (
        pending &&
        context.commandName === "UpdateItemCommand" &&
        input.Key?.pk?.S === connectionKey(fx.conn.connectionId)
      ) {
        pending = false;
        await meanwhile();
      }
      return next(args);
    },
    { step: "initialize", name: "interleave" },
  );
  return client;
}

/** A vend that needs a refresh, meets "Old refresh token used" under its lease and writes BROKEN, due now. */
async function vendThatBreaksTheChain(fx: Fixture): Promise<void> {
  await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ChainBusy);
}

/** The worker handed the chain's message, as the queue delivers it (no claim). */
async function workOn(fx: Fixture, dynamo: DynamoDBClient) {
  const { dueAtMs } = await fx.record();
  return fx
    .broker({ ...NO_HEAL, dynamo })
    .refreshWorker.run(
      [{ connectionId: fx.conn.connectionId, dueAtMs: dueAtMs ?? 0, delaySeconds: 0 }],
      fx.clock.now() + 55_000,
    );
}

describe("unleased due-time writes never undo what a lease holder decided at the same generation", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("the worker's cool of an idle chain leaves a BROKEN written meanwhile, and its due time, alone", async () => {
    fx = await startFixture();
    await fx.chainStartedElsewhere();
    fx.clock.advance(WINDOW_S);
    const before = await fx.record();
    // Never vended: idle, so the worker cools it.
    expect(before.status).toBe(ChainStatus.Active);
    expect(before.lastVendAtMs).toBeUndefined();
    let broken: { status: string; statusReason?: string; dueShard?: string; dueAtMs?: number } | undefined;

    // The worker reads the idle ACTIVE chain and decides to cool it; before its write lands, a vend
    // takes the lease, meets "Old refresh token used" and writes BROKEN, due now (same generation).
    const worked = await workOn(
      fx,
      interleaved(fx, async () => {
        await vendThatBreaksTheChain(fx);
        broken = await fx.record();
      }),
    );

    // Its cool was refused: the outcome says so.
    expect(worked.outcomes).toMatchObject({ cooled: 0, skipped: 1 });
    expect(broken).toMatchObject({ status: ChainStatus.Broken, statusReason: "old_token" });
    const after = await fx.record();
    expect(after.generation).toBe(before.generation);
    expect(after).toMatchObject({
      status: ChainStatus.Broken,
      statusReason: "old_token",
      dueShard: broken?.dueShard,
      dueAtMs: broken?.dueAtMs,
    });
    expect(after.dueAtMs).toBeLessThanOrEqual(fx.clock.now());
    // So the next tick queues its heal.
    const queue = new MemoryRefreshQueue();
    await fx.broker({ ...NO_HEAL, refreshQueue: queue }).dispatch?.run();
    expect(queue.sent.map((m) => m.connectionId)).toContain(fx.conn.connectionId);
  });

  it("the worker's cool leaves a chain a vend made hot meanwhile at its window", async () => {
    fx = await startFixture();
    fx.clock.advance(60);

    // Between the worker's read and its cool, a vend serves the current token and puts the idle
    // chain back at its window (VendAnswers.current → markHot).
    await workOn(
      fx,
      interleaved(fx, async () => {
        await fx.broker().vend.vend(fx.conn.connectionId, 30);
      }),
    );

    const after = await fx.record();
    expect(after.lastVendAtMs).toBeDefined();
    expect(after.dueAtMs).toBe(after.windowOpensAtMs);
  });

  it("still cools an idle chain the dispatcher claimed (the worker's record carries the found due time)", async () => {
    fx = await startFixture();
    fx.clock.advance(60);
    // Idle, never vended, due by hand 5 minutes ago: the overdue sweep claims it.
    await fx.stack.dynamo.client.send(
      new UpdateItemCommand({
        TableName: fx.stack.tableName,
        Key: marshall({ pk: connectionKey(fx.conn.connectionId) }),
        UpdateExpression: "SET dueShard = :shard, dueAtMs = :at",
        ExpressionAttributeValues: marshall({ ":shard": "due", ":at": fx.clock.now() - 300_000 }),
      }),
    );
    const queue = new MemoryRefreshQueue();
    await fx.broker({ refreshQueue: queue }).dispatch?.run();
    const [message] = queue.drain();
    expect(message?.redispatchAtMs).toBeDefined();
    expect((await fx.record()).dueAtMs).toBe(message?.redispatchAtMs);

    const worked = await fx.broker().refreshWorker.run(message ? [message] : [], fx.clock.now() + 55_000);

    expect(worked.outcomes.cooled).toBe(1);
    const after = await fx.record();
    const keepaliveAtMs = keepaliveDueAtMs(
      after.refreshIssuedAtMs ?? after.createdAtMs,
      fx.broker().config.keepaliveDays,
    );
    expect(after).toMatchObject({ dueShard: "due", dueAtMs: keepaliveAtMs });
  });

  it("cool does not land while a lease is live", async () => {
    fx = await startFixture();
    const session = await fx.store().acquire({
      record: await fx.record(),
      owner: "another-holder",
      purpose: LeasePurpose.Refresh,
      leaseMs: 30_000,
    });
    if (!session) throw new Error("lease refused");
    const read = await fx.record();

    expect(await fx.store().unleased.cool(read, fx.clock.now() + 86_400_000)).toBe(false);
    expect((await fx.record()).dueAtMs).toBe(read.dueAtMs);
    await session.end();
  });

  it("a vend's markHot leaves a BROKEN written meanwhile, and its due time, alone", async () => {
    fx = await startFixture();
    await fx.chainStartedElsewhere();
    fx.clock.advance(WINDOW_S);
    // What a vend read and would mark: an idle chain, parked at its keep-alive date.
    const read = await fx.record();
    await vendThatBreaksTheChain(fx);
    const broken = await fx.record();

    expect(await fx.store().unleased.markHot(read, read.windowOpensAtMs)).toBe(false);

    expect(await fx.record()).toMatchObject({
      status: ChainStatus.Broken,
      dueShard: broken.dueShard,
      dueAtMs: broken.dueAtMs,
    });
  });
});
