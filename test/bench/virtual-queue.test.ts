import { describe, expect, it } from "vitest";
import { emptyCounts } from "../../bench/scale/instruments.js";
import { VirtualRefreshQueue } from "../../bench/scale/virtual-queue.js";
import { EventClock } from "../../bench/support/event-clock.js";
import type { DueChainMessage } from "../../lib/chain/refresh-dispatch.js";

const START_MS = 1_000_000;

function message(i: number, delaySeconds = 0): DueChainMessage {
  return { connectionId: `c${i}`, dueAtMs: START_MS + delaySeconds * 1000, delaySeconds };
}

/** A queue of the stack's event source shape; each invocation records when and how many. */
function queueOf(settings: { batchingWindowMs: number; pollers: number }) {
  const clock = new EventClock(START_MS);
  const counts = emptyCounts();
  const queue = new VirtualRefreshQueue(clock, counts, { batchSize: 10, maxConcurrency: 10, ...settings });
  const invocations: Array<{ atMs: number; size: number }> = [];
  queue.consume(
    async (messages) => void invocations.push({ atMs: clock.now() - START_MS, size: messages.length }),
  );
  return { clock, counts, queue, invocations };
}

describe("VirtualRefreshQueue (the worker's SQS event source, modelled)", () => {
  it("gathers a trickle of messages for the batching window, each poller its own batch", async () => {
    const { clock, counts, queue, invocations } = queueOf({ batchingWindowMs: 3_000, pollers: 5 });
    // 20 messages a second become visible for 1 s, as chains fall due at 10,000 hot connections.
    for (let i = 0; i < 20; i += 1) clock.at(START_MS + i * 50, () => void queue.send([message(i)]));

    await clock.runUntil(START_MS + 10_000);

    // Five pollers of four messages each, invoked 3 s after each one's first message.
    expect(invocations).toEqual([
      { atMs: 3_000, size: 4 },
      { atMs: 3_050, size: 4 },
      { atMs: 3_100, size: 4 },
      { atMs: 3_150, size: 4 },
      { atMs: 3_200, size: 4 },
    ]);
    expect(counts.sqsReceives).toBe(5);
    expect(queue.take()).toMatchObject({ sent: 20, delivered: 20, batches: 5 });
  });

  it("invokes at once when a poller's batch is full", async () => {
    const { clock, invocations, queue } = queueOf({ batchingWindowMs: 3_000, pollers: 2 });
    clock.at(START_MS, () => void queue.send(Array.from({ length: 20 }, (_, i) => message(i))));

    await clock.runUntil(START_MS + 1_000);

    expect(invocations).toEqual([
      { atMs: 0, size: 10 },
      { atMs: 0, size: 10 },
    ]);
  });

  it("without a batching window, hands a trickle over message by message", async () => {
    const { clock, invocations, queue } = queueOf({ batchingWindowMs: 0, pollers: 5 });
    for (let i = 0; i < 20; i += 1) clock.at(START_MS + i * 200, () => void queue.send([message(i)]));

    await clock.runUntil(START_MS + 10_000);

    expect(invocations).toHaveLength(20);
    expect(invocations.every((invocation) => invocation.size === 1)).toBe(true);
  });
});
