import type { Context, SQSEvent, SQSRecord } from "aws-lambda";
import { afterEach, describe, expect, it } from "vitest";
import { DEADLINE_MARGIN_MS } from "../../lib/handlers/deadline.js";
import { createRefreshHandler } from "../../lib/handlers/refresh-handler.js";
import { createRefreshWorkerHandler } from "../../lib/handlers/refresh-worker-handler.js";
import { createLogger } from "../../lib/log/logger.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { MemoryRefreshQueue } from "../support/memory-refresh-queue.js";

const context = {
  awsRequestId: "req-1",
  functionName: "refresh-worker",
  getRemainingTimeInMillis: () => 55_000,
} as unknown as Context;

const scheduled = { "detail-type": "Scheduled Event", source: "aws.events", detail: {} };

function sqsEvent(bodies: readonly string[]): SQSEvent {
  return {
    Records: bodies.map((body, i) => ({ messageId: `m-${i}`, body }) as unknown as SQSRecord),
  };
}

describe("the refresh function with a queue, and the refresh-worker function", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("dispatches on the schedule; the worker refreshes what arrives in the SQS event", async () => {
    fx = await startFixture();
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    // 40 s before the window: in this tick's stretch of due times.
    fx.clock.advance(531);
    const queue = new MemoryRefreshQueue();
    const refresh = createRefreshHandler(
      fx.broker({ refreshQueue: queue, log: createLogger({ serviceName: "refresh" }) }),
      createLogger({ serviceName: "refresh" }),
    );

    await expect(refresh(scheduled as never, context)).resolves.toMatchObject({ due: 1, dispatched: 1 });

    const logger = createLogger({ serviceName: "refresh-worker" });
    const worker = createRefreshWorkerHandler(fx.broker({ log: logger }), logger);
    // SQS hands the body the adapter wrote (sqs-refresh-queue.test.ts shows the round trip).
    const [message] = queue.drain();
    fx.clock.advance(40);
    const body = JSON.stringify({ connectionId: message?.connectionId, dueAtMs: message?.dueAtMs });
    const summary = await worker(sqsEvent([body]), context);

    expect(summary.outcomes.refreshed).toBe(1);
    expect((await fx.record()).generation).toBe(2);
  });

  it("waits, in both functions, for the heals a run triggered to reach fallback-login", async () => {
    fx = await startFixture();
    const waits: Array<number | undefined> = [];
    const healTrigger = { trigger: () => undefined, handedOff: async (ms?: number) => void waits.push(ms) };
    const logger = createLogger({ serviceName: "refresh" });
    const refresh = createRefreshHandler(
      fx.broker({ refreshQueue: new MemoryRefreshQueue(), log: logger, healTrigger }),
      logger,
    );
    const worker = createRefreshWorkerHandler(fx.broker({ log: logger, healTrigger }), logger);

    await refresh(scheduled as never, context);
    await worker(sqsEvent([]), context);

    expect(waits).toEqual([55_000 - DEADLINE_MARGIN_MS, 55_000 - DEADLINE_MARGIN_MS]);
  });

  it("drops a malformed message and still does the batch's good ones", async () => {
    fx = await startFixture();
    fx.clock.advance(25 * 86_400 + 60);
    const logger = createLogger({ serviceName: "refresh-worker" });
    const worker = createRefreshWorkerHandler(fx.broker({ log: logger }), logger);
    const dueAtMs = (await fx.record()).dueAtMs ?? 0;
    const good = JSON.stringify({ connectionId: fx.conn.connectionId, dueAtMs, redispatchAtMs: dueAtMs + 1 });

    const summary = await worker(sqsEvent(["not json", good]), context);

    expect(summary.outcomes.keepalive).toBe(1);
    expect(summary.failures).toEqual([]);
  });
});
