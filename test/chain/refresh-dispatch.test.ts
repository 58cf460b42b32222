import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import {
  DISPATCH_LEAD_MS,
  OVERDUE_AFTER_MS,
  REDISPATCH_AFTER_MS,
  SCHEDULE_TICK_MS,
} from "../../lib/chain/refresh-dispatch.js";
import { countingDynamo } from "../../lib/local/counting-dynamo.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { MemoryRefreshQueue } from "../support/memory-refresh-queue.js";

const DAY_S = 86_400;
/** Exact's access token lives 600 s; the broker's window opens 571 s after it arrives. */
const WINDOW_OPENS_S = 571;

describe("RefreshDispatch and RefreshWorker (the scheduled refresh at scale)", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  const dispatch = (queue: MemoryRefreshQueue, deadlineMs?: number) =>
    fx.broker({ refreshQueue: queue }).dispatch?.run(deadlineMs !== undefined ? { deadlineMs } : {});

  /** A hot chain whose window opens `secondsAhead` from now. */
  async function hotChain(secondsAhead: number): Promise<void> {
    fx = await startFixture();
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(WINDOW_OPENS_S - secondsAhead);
  }

  it("queues a hot chain with a delay until its window and writes nothing for it; the worker refreshes it in its window", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    const windowAtMs = (await fx.record()).windowOpensAtMs ?? 0;
    const { client, counts } = countingDynamo(fx.stack.dynamo.endpoint);

    const summary = await fx.broker({ dynamo: client, refreshQueue: queue }).dispatch?.run();

    expect(summary).toEqual({ due: 1, dispatched: 1, claimedElsewhere: 0, deferred: 0 });
    expect(queue.sent).toHaveLength(1);
    const [message] = queue.sent;
    expect(message?.connectionId).toBe(fx.conn.connectionId);
    // Whole seconds, rounded up: the message never arrives before the window.
    expect(message?.delaySeconds).toBe(Math.ceil((windowAtMs - fx.clock.now()) / 1000));
    expect(message?.dueAtMs).toBe(windowAtMs);
    expect(message?.redispatchAtMs).toBeUndefined();
    // No claim: the one write is the dispatcher's cursor; the chain's due time is its own.
    expect(counts.UpdateItem).toBe(1);
    expect((await fx.record()).dueAtMs).toBe(windowAtMs);
    expect(fx.chainStats().tokenRequests.refreshed).toBe(0);

    fx.clock.advance(message?.delaySeconds ?? 0);
    const worked = await fx.broker().refreshWorker.run(queue.drain(), fx.clock.now() + 55_000);

    expect(worked.outcomes.refreshed).toBe(1);
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, too_early: 0 });
    const record = await fx.record();
    expect(record.generation).toBe(2);
    expect(record.dueAtMs).toBe(record.windowOpensAtMs);
    expect((await fx.broker().vend.vend(fx.conn.connectionId, 30)).generation).toBe(2);
  });

  it("queues a chain once: the next tick starts where the cursor stopped", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    await dispatch(queue);
    fx.clock.advance(SCHEDULE_TICK_MS / 1000);

    const second = await dispatch(queue);

    expect(second?.due).toBe(0);
    expect(queue.sent).toHaveLength(1);
  });

  it("leaves no gap between ticks that run a second late or early", async () => {
    // Due 90.5 s after the first tick: just past its reach, inside the late tick's (61 s later).
    await hotChain(90.5);
    const queue = new MemoryRefreshQueue();
    expect(await dispatch(queue)).toMatchObject({ due: 0 });
    fx.clock.advance(61);
    expect(await dispatch(queue)).toMatchObject({ due: 1, dispatched: 1 });
    // An early tick queues nothing twice.
    fx.clock.advance(59);
    expect(await dispatch(queue)).toMatchObject({ due: 0 });
    expect(queue.sent).toHaveLength(1);
  });

  it("queues a skipped tick's due times at the next one, at once", async () => {
    await hotChain(100);
    const queue = new MemoryRefreshQueue();
    expect(await dispatch(queue)).toMatchObject({ due: 0 });
    // The tick 60 s later never runs; 120 s later the window opened 20 s ago.
    fx.clock.advance(120);

    expect(await dispatch(queue)).toMatchObject({ due: 1, dispatched: 1 });
    expect(queue.sent[0]?.delaySeconds).toBe(0);
    expect(queue.sent[0]?.redispatchAtMs).toBeUndefined();
  });

  it("sends a batch again after SQS failed it, with the delay counted from the send that worked", async () => {
    await hotChain(40);
    const windowAtMs = (await fx.record()).windowOpensAtMs ?? 0;
    const queue = new MemoryRefreshQueue();
    queue.failNext = 2;

    const summary = await dispatch(queue, fx.clock.now() + 60_000);

    expect(summary).toMatchObject({ due: 1, dispatched: 1, deferred: 0 });
    expect(queue.sent).toHaveLength(1);
    // Paused 1 s, then 2 s (the fixture's clock jumps): the message still arrives at the window.
    expect(queue.sent[0]?.delaySeconds).toBe(Math.ceil((windowAtMs - fx.clock.now()) / 1000));
    expect(queue.sent[0]?.delaySeconds).toBeLessThanOrEqual(37);
  });

  it("sends again only the entries SQS refused", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    queue.refuseNext.add(fx.conn.connectionId);

    const summary = await dispatch(queue, fx.clock.now() + 60_000);

    expect(summary).toMatchObject({ due: 1, dispatched: 1, deferred: 0 });
    expect(queue.sent.map((m) => m.connectionId)).toEqual([fx.conn.connectionId]);
  });

  it("leaves its cursor when SQS keeps failing until the deadline: the next tick queues those chains", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    queue.failNext = 100;
    const windowAtMs = (await fx.record()).windowOpensAtMs ?? 0;

    const failed = await dispatch(queue, fx.clock.now() + 10_000);

    expect(failed).toMatchObject({ due: 1, dispatched: 0, deferred: 1 });
    expect((await fx.record()).dueAtMs).toBe(windowAtMs);
    queue.failNext = 0;
    fx.clock.advance(SCHEDULE_TICK_MS / 1000);
    const next = await dispatch(queue);
    expect(next).toMatchObject({ due: 1, dispatched: 1 });
    expect(queue.sent[0]?.redispatchAtMs).toBeUndefined();
  });

  it("queues and claims a chain made hot after the cursor passed its window (the catch-up partition)", async () => {
    fx = await startFixture();
    const queue = new MemoryRefreshQueue();
    // Seeded and never vended: idle, due at its keep-alive date. A tick 80 s before its window
    // moves the cursor past it; then a first vend makes it hot.
    fx.clock.advance(WINDOW_OPENS_S - 80);
    expect(await dispatch(queue)).toMatchObject({ due: 0 });
    fx.clock.advance(10);
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    const record = await fx.record();
    expect(record).toMatchObject({ dueShard: "catch-up", dueAtMs: record.windowOpensAtMs });

    fx.clock.advance(50);
    expect(await dispatch(queue)).toMatchObject({ due: 1, dispatched: 1 });
    const [message] = queue.drain();

    expect(message?.dueAtMs).toBe(record.windowOpensAtMs);
    expect(message?.redispatchAtMs).toBeDefined();
    const claimed = await fx.record();
    expect(claimed).toMatchObject({ dueShard: "due", dueAtMs: message?.redispatchAtMs });
    fx.clock.advance(message?.delaySeconds ?? 0);
    const worked = await fx.broker().refreshWorker.run(message ? [message] : [], fx.clock.now() + 55_000);
    expect(worked.outcomes.refreshed).toBe(1);
  });

  it("finds an overdue chain, claims it, and finds it again when its message is lost", async () => {
    fx = await startFixture();
    fx.clock.advance(25 * DAY_S + OVERDUE_AFTER_MS / 1000);
    const queue = new MemoryRefreshQueue();
    const first = await dispatch(queue);
    expect(first).toMatchObject({ due: 1, dispatched: 1 });
    const [lost] = queue.drain();
    expect(lost?.redispatchAtMs).toBeDefined();

    fx.clock.advance((REDISPATCH_AFTER_MS - DISPATCH_LEAD_MS) / 1000 + 1);
    const again = await dispatch(queue);

    expect(again).toMatchObject({ due: 1, dispatched: 1 });
    const worked = await fx.broker().refreshWorker.run(queue.drain(), fx.clock.now() + 55_000);
    expect(worked.outcomes.keepalive).toBe(1);
    expect((await fx.record()).generation).toBe(2);
  });

  it("refreshes a hot chain found overdue long after its window: hotness is judged at the window", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    await dispatch(queue);
    queue.drain(); // lost
    // Three token lifetimes later its last vend is too old to make it hot now, not at its window.
    fx.clock.advance(40 + 1_800);

    await dispatch(queue);
    const [found] = queue.drain();
    expect(found?.redispatchAtMs).toBeDefined();
    const worked = await fx.broker().refreshWorker.run(found ? [found] : [], fx.clock.now() + 55_000);

    expect(worked.outcomes).toMatchObject({ refreshed: 1, cooled: 0 });
  });

  it("refreshes once when the same message is delivered twice at once (SQS delivers at least once)", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    await dispatch(queue);
    fx.clock.advance(40);
    const [message] = queue.drain();
    if (!message) throw new Error("nothing queued");

    const [a, b] = await Promise.all([
      fx.broker().refreshWorker.run([message], fx.clock.now() + 55_000),
      fx.broker().refreshWorker.run([message], fx.clock.now() + 55_000),
    ]);

    expect(a.outcomes.refreshed + b.outcomes.refreshed).toBe(1);
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, old_token: 0 });
  });

  it("skips a duplicate that arrives after the chain moved on", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    await dispatch(queue);
    fx.clock.advance(40);
    const [message] = queue.drain();
    if (!message) throw new Error("nothing queued");
    await fx.broker().refreshWorker.run([message], fx.clock.now() + 55_000);

    const duplicate = await fx.broker().refreshWorker.run([message], fx.clock.now() + 55_000);

    expect(duplicate.outcomes).toMatchObject({ refreshed: 0, skipped: 1 });
    expect(fx.chainStats().tokenRequests.refreshed).toBe(1);
  });

  it("starts no chain's work it could not finish before the deadline", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    await dispatch(queue);
    fx.clock.advance(40);
    const broker = fx.broker();

    const summary = await broker.refreshWorker.run(queue.drain(), fx.clock.now() + broker.config.leaseMs);

    expect(summary.outcomes).toMatchObject({ deferred: 1, refreshed: 0 });
    expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
  });

  it("queues nothing past its own deadline: the rest waits for the next tick", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();

    const summary = await dispatch(queue, fx.clock.now());

    expect(summary).toMatchObject({ due: 1, dispatched: 0, deferred: 1 });
    expect(queue.sent).toHaveLength(0);
  });

  it("a vend leaves a backoff's due time alone (it says when the work may run again)", async () => {
    await hotChain(20);
    const retryAtMs = fx.clock.now() + 45_000;
    await fx.stack.dynamo.client.send(
      new UpdateItemCommand({
        TableName: fx.stack.tableName,
        Key: marshall({ pk: `CONN#${fx.conn.connectionId}` }),
        UpdateExpression: "SET backoffUntilMs = :at, dueAtMs = :at",
        ExpressionAttributeValues: marshall({ ":at": retryAtMs }),
      }),
    );
    await fx.broker().vend.vend(fx.conn.connectionId, 1);

    // Not moved back to the window, 20 s away (the dispatcher would claim it again at once).
    expect((await fx.record()).dueAtMs).toBe(retryAtMs);
  });

  it("reads the sparse index, never a scan, and leaves chains due later alone", async () => {
    await hotChain(DISPATCH_LEAD_MS / 1000 + 30);
    const { client, counts } = countingDynamo(fx.stack.dynamo.endpoint);
    const queue = new MemoryRefreshQueue();

    const summary = await fx.broker({ dynamo: client, refreshQueue: queue }).dispatch?.run();

    expect(summary?.due).toBe(0);
    expect(counts.Scan).toBeUndefined();
    // This tick's stretch, the overdue sweep and the catch-up partition.
    expect(counts.Query).toBe(3);
    expect(queue.sent).toHaveLength(0);
  });
});
