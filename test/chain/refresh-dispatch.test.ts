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

  /** The tick a minute ago, whose slice holds a window opening now. */
  const lastTick = () => ({ tickAtMs: fx.clock.now() - SCHEDULE_TICK_MS });

  /** A hot chain whose window opens `secondsAhead` from now. */
  async function hotChain(secondsAhead: number): Promise<void> {
    fx = await startFixture();
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(WINDOW_OPENS_S - secondsAhead);
  }

  it("queues a hot chain with a delay until its window and writes nothing; the worker refreshes it in its window", async () => {
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
    // Queued as it fell due: no claim, the chain's due time is its own.
    expect(counts.UpdateItem).toBeUndefined();
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

  it("queues a chain once: the next tick's slice begins where this one's ended", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    await fx.broker({ refreshQueue: queue }).dispatch?.run();
    fx.clock.advance(SCHEDULE_TICK_MS / 1000);

    const second = await fx.broker({ refreshQueue: queue }).dispatch?.run();

    expect(second?.due).toBe(0);
    expect(queue.sent).toHaveLength(1);
  });

  it("queues a retried tick's slice again (the retry of a failed run, with its event's time)", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    const tickAtMs = fx.clock.now();
    fx.clock.advance(SCHEDULE_TICK_MS / 1000);

    const retried = await fx.broker({ refreshQueue: queue }).dispatch?.run({ tickAtMs });

    expect(retried).toMatchObject({ due: 1, dispatched: 1 });
    // Its window opened 20 s ago: delivered at once.
    expect(queue.sent[0]?.delaySeconds).toBe(0);
  });

  it("sends a batch again after SQS failed it, within the run", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    queue.failNext = 2;

    const summary = await fx
      .broker({ refreshQueue: queue })
      .dispatch?.run({ deadlineMs: fx.clock.now() + 60_000 });

    expect(summary).toMatchObject({ due: 1, dispatched: 1, deferred: 0 });
    expect(queue.sent).toHaveLength(1);
  });

  it("defers a batch SQS keeps failing at its deadline; the overdue sweep queues and claims it", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();
    queue.failNext = 100;
    const windowAtMs = (await fx.record()).windowOpensAtMs ?? 0;

    const failed = await fx
      .broker({ refreshQueue: queue })
      .dispatch?.run({ deadlineMs: fx.clock.now() + 10_000 });

    expect(failed).toMatchObject({ due: 1, dispatched: 0, deferred: 1 });
    expect((await fx.record()).dueAtMs).toBe(windowAtMs);
    queue.failNext = 0;
    // In flight, as far as the next tick can tell: left alone until overdue.
    fx.clock.advance(SCHEDULE_TICK_MS / 1000);
    expect(await fx.broker({ refreshQueue: queue }).dispatch?.run()).toMatchObject({ due: 0 });
    fx.clock.advance(SCHEDULE_TICK_MS / 1000);
    const swept = await fx.broker({ refreshQueue: queue }).dispatch?.run();
    expect(swept).toMatchObject({ due: 1, dispatched: 1 });
    const [message] = queue.drain();
    expect(message?.dueAtMs).toBe(windowAtMs);
    expect(message?.redispatchAtMs).toBeGreaterThanOrEqual(windowAtMs + 2 * SCHEDULE_TICK_MS);
    expect((await fx.record()).dueAtMs).toBe(message?.redispatchAtMs);
    // Hot when its work fell due: refreshed, however late.
    const worked = await fx.broker().refreshWorker.run(message ? [message] : [], fx.clock.now() + 55_000);
    expect(worked.outcomes.refreshed).toBe(1);
  });

  it("finds a claimed chain again when its message is lost", async () => {
    fx = await startFixture();
    fx.clock.advance(25 * DAY_S + OVERDUE_AFTER_MS / 1000);
    const queue = new MemoryRefreshQueue();
    const first = await fx.broker({ refreshQueue: queue }).dispatch?.run();
    expect(first).toMatchObject({ due: 1, dispatched: 1 });
    const [lost] = queue.drain();
    expect(lost?.redispatchAtMs).toBeDefined();

    fx.clock.advance((REDISPATCH_AFTER_MS - DISPATCH_LEAD_MS) / 1000 + 1);
    const again = await fx.broker({ refreshQueue: queue }).dispatch?.run();

    expect(again).toMatchObject({ due: 1, dispatched: 1 });
    const worked = await fx.broker().refreshWorker.run(queue.drain(), fx.clock.now() + 55_000);
    expect(worked.outcomes.keepalive).toBe(1);
    expect((await fx.record()).generation).toBe(2);
  });

  it("refreshes once when the same message is delivered twice at once (SQS delivers at least once)", async () => {
    await hotChain(0);
    const queue = new MemoryRefreshQueue();
    await fx.broker({ refreshQueue: queue }).dispatch?.run(lastTick());
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
    await hotChain(0);
    const queue = new MemoryRefreshQueue();
    await fx.broker({ refreshQueue: queue }).dispatch?.run(lastTick());
    const [message] = queue.drain();
    if (!message) throw new Error("nothing queued");
    await fx.broker().refreshWorker.run([message], fx.clock.now() + 55_000);

    const duplicate = await fx.broker().refreshWorker.run([message], fx.clock.now() + 55_000);

    expect(duplicate.outcomes).toMatchObject({ refreshed: 0, skipped: 1 });
    expect(fx.chainStats().tokenRequests.refreshed).toBe(1);
  });

  it("starts no chain's work it could not finish before the deadline", async () => {
    await hotChain(0);
    const queue = new MemoryRefreshQueue();
    await fx.broker({ refreshQueue: queue }).dispatch?.run(lastTick());
    const broker = fx.broker();

    const summary = await broker.refreshWorker.run(queue.drain(), fx.clock.now() + broker.config.leaseMs);

    expect(summary.outcomes).toMatchObject({ deferred: 1, refreshed: 0 });
    expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
  });

  it("queues nothing past its own deadline: the rest waits for the next tick", async () => {
    await hotChain(40);
    const queue = new MemoryRefreshQueue();

    const summary = await fx.broker({ refreshQueue: queue }).dispatch?.run({ deadlineMs: fx.clock.now() });

    expect(summary).toMatchObject({ due: 1, dispatched: 0, deferred: 1 });
    expect(queue.sent).toHaveLength(0);
  });

  it("reads the sparse index, never a scan, and leaves chains due later alone", async () => {
    await hotChain(DISPATCH_LEAD_MS / 1000 + 30);
    const { client, counts } = countingDynamo(fx.stack.dynamo.endpoint);
    const queue = new MemoryRefreshQueue();

    const summary = await fx.broker({ dynamo: client, refreshQueue: queue }).dispatch?.run();

    expect(summary?.due).toBe(0);
    expect(counts.Scan).toBeUndefined();
    // This tick's slice, and the overdue sweep.
    expect(counts.Query).toBe(2);
    expect(queue.sent).toHaveLength(0);
  });
});
