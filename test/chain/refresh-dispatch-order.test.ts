import { PutItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { type DueChainMessage, SEND_BATCH_SIZE } from "../../lib/chain/refresh-dispatch.js";
import { ChainTable, connectionKey } from "../../lib/chain/table-definition.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { MemoryRefreshQueue } from "../support/memory-refresh-queue.js";

/** Exact's access token lives 600 s; the broker's window opens 571 s after it arrives. */
const WINDOW_OPENS_S = 571;
const OVERDUE = 40;
/** Each SendMessageBatch takes this long (a queue under strain). */
const SEND_S = 5;

/** A queue whose every send takes {@link SEND_S} on the fixture's clock. */
class SlowQueue extends MemoryRefreshQueue {
  constructor(private readonly fx: Fixture) {
    super();
  }

  override async send(messages: readonly DueChainMessage[]): Promise<readonly DueChainMessage[]> {
    this.fx.clock.advance(SEND_S);
    return super.send(messages);
  }
}

/** An entry of the due index as the dispatcher sees it (it reads keys only, and claims by due time). */
async function dueEntry(fx: Fixture, connectionId: string, shard: string, dueAtMs: number): Promise<void> {
  await fx.stack.dynamo.client.send(
    new PutItemCommand({
      TableName: fx.stack.tableName,
      Item: marshall({ pk: connectionKey(connectionId), dueShard: shard, dueAtMs }),
    }),
  );
}

describe("RefreshDispatch under a backlog", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("queues chains still on time before overdue ones: the deadline defers only late chains", async () => {
    fx = await startFixture();
    // The fixture's chain, hot, its window 40 s ahead (this tick's stretch).
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(WINDOW_OPENS_S - 40);
    const windowAtMs = (await fx.record()).windowOpensAtMs ?? 0;
    const startMs = fx.clock.now();
    // A chain made hot just before its window: the catch-up partition, due in 30 s.
    await dueEntry(fx, "catch-up-1", ChainTable.catchUpShardValue, startMs + 30_000);
    // A backlog of overdue chains (lost messages, dead workers), 10 to 50 minutes late.
    const overdue = Array.from({ length: OVERDUE }, (_, i) => `overdue-${i}`);
    for (const [i, id] of overdue.entries())
      await dueEntry(fx, id, ChainTable.dueShardValue, startMs - 600_000 - i * 60_000);
    const queue = new SlowQueue(fx);

    // Time for three sends before the deadline (less its 2 s margin): 30 of the 42 chains.
    const summary = await fx.broker({ refreshQueue: queue }).dispatch?.run({ deadlineMs: startMs + 14_000 });

    const sent = queue.sent.map((m) => m.connectionId);
    expect(summary).toMatchObject({ due: OVERDUE + 2, deferred: OVERDUE + 2 - 3 * SEND_BATCH_SIZE });
    expect(sent).toHaveLength(3 * SEND_BATCH_SIZE);
    expect(sent.slice(0, 2)).toEqual(["catch-up-1", fx.conn.connectionId]);
    const mine = queue.sent.find((m) => m.connectionId === fx.conn.connectionId);
    expect(mine).toMatchObject({ dueAtMs: windowAtMs });
    expect(mine?.redispatchAtMs).toBeUndefined();
    // What was deferred is overdue: the least late (the sweep goes earliest first).
    const deferred = overdue.filter((id) => !sent.includes(id));
    expect(deferred).toHaveLength(OVERDUE + 2 - 3 * SEND_BATCH_SIZE);
    expect(sent.filter((id) => id.startsWith("overdue-"))).toEqual(
      overdue.slice(-(3 * SEND_BATCH_SIZE - 2)).reverse(),
    );

    // Only overdue chains were deferred: the cursor moved on (the sweep finds them anyway), so
    // the next tick queues them and not this tick's stretch again.
    const next = new MemoryRefreshQueue();
    expect(await fx.broker({ refreshQueue: next }).dispatch?.run()).toMatchObject({ deferred: 0 });
    const again = next.sent.map((m) => m.connectionId);
    expect(again).not.toContain(fx.conn.connectionId);
    for (const id of deferred) expect(again).toContain(id);
  });
});
