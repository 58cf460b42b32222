import type { DueChainMessage, RefreshQueue } from "../../lib/chain/refresh-dispatch.js";
import type { EventClock } from "../support/event-clock.js";
import type { CallCounts } from "./instruments.js";
import { LATENCY_MS } from "./model.js";

/** How an SQS event source hands the queue's messages to the worker function. */
export interface EventSourceSettings {
  /** Messages per invocation at most (BatchSize). */
  readonly batchSize: number;
  /** Invocations at once at most (ScalingConfig.MaximumConcurrency). */
  readonly maxConcurrency: number;
  /** How long a poller gathers messages before it invokes with fewer than a batch (MaximumBatchingWindowInSeconds, ms). */
  readonly batchingWindowMs: number;
  /**
   * Pollers reading the queue at once, each gathering its own batch. Lambda starts with five
   * and stays at no fewer once MaximumConcurrency is set (AWS Lambda docs, "Configuring scaling
   * behavior for SQS event source mappings").
   */
  readonly pollers: number;
}

/** What the queue saw of its messages. */
export interface QueueStats {
  sent: number;
  delivered: number;
  /** Worker invocations the event source made: each a ReceiveMessage and a DeleteMessageBatch. */
  batches: number;
  /** Most messages visible but not yet handed to an invocation at one moment. */
  maxBacklog: number;
  /** Longest time a message waited from its due time (the claim's) to its invocation (ms). */
  maxLateMs: number;
}

/**
 * The dispatcher's SQS queue and the worker's event source, on the virtual clock (moto runs SQS
 * delays in real time; the SQS adapter itself is tested against moto, test/queue/). A message is
 * visible `DelaySeconds` after its SendMessageBatch was accepted and goes to one of `pollers`
 * pollers in turn. A poller's batch is ready when it holds `batchSize` messages, or
 * `batchingWindowMs` (at least LATENCY_MS.sqsReceive) after its first message became visible;
 * ready batches invoke the worker while fewer than `maxConcurrency` invocations run. So the
 * messages per invocation follow the rate at which chains fall due, not the bench's own rhythm.
 * Delivery is exactly once here: SQS's at-least-once duplicates are the worker's tests' business.
 */
export class VirtualRefreshQueue implements RefreshQueue {
  stats: QueueStats = { sent: 0, delivered: 0, batches: 0, maxBacklog: 0, maxLateMs: 0 };
  readonly #clock: EventClock;
  readonly #counts: CallCounts;
  readonly #settings: EventSourceSettings;
  /** Each poller's batch being gathered; a generation number tells its window's timer whether it is still that batch. */
  readonly #gathering: Array<{ messages: DueChainMessage[]; generation: number }>;
  #nextPoller = 0;
  /** Batches gathered, waiting for room under MaximumConcurrency. */
  readonly #ready: DueChainMessage[][] = [];
  #running = 0;
  #work: ((messages: DueChainMessage[]) => Promise<unknown>) | undefined;

  constructor(clock: EventClock, counts: CallCounts, settings: EventSourceSettings) {
    this.#clock = clock;
    this.#counts = counts;
    this.#settings = settings;
    this.#gathering = Array.from({ length: settings.pollers }, () => ({ messages: [], generation: 0 }));
  }

  /** The worker invocation the event source makes with each batch. */
  consume(work: (messages: DueChainMessage[]) => Promise<unknown>): void {
    this.#work = work;
  }

  async send(messages: readonly DueChainMessage[]): Promise<readonly DueChainMessage[]> {
    const acceptedAtMs = this.#clock.now();
    await this.#clock.track(async () => {
      this.#counts.sqsSends += 1;
      this.#counts.sqsMessages += messages.length;
      this.stats.sent += messages.length;
      for (const message of messages) {
        this.#clock.at(acceptedAtMs + message.delaySeconds * 1000, () =>
          this.#gather({ ...message, delaySeconds: 0 }),
        );
      }
    }, LATENCY_MS.sqsSend);
    return [];
  }

  /** The stats since the last call. */
  take(): QueueStats {
    const taken = this.stats;
    this.stats = { sent: 0, delivered: 0, batches: 0, maxBacklog: 0, maxLateMs: 0 };
    return taken;
  }

  /** Messages visible but not yet in an invocation: gathering in a poller or waiting for room. */
  get backlog(): number {
    return (
      this.#gathering.reduce((sum, poller) => sum + poller.messages.length, 0) +
      this.#ready.reduce((sum, batch) => sum + batch.length, 0)
    );
  }

  /** A message became visible: the next poller in turn takes it into its batch. */
  #gather(message: DueChainMessage): void {
    const index = this.#nextPoller;
    this.#nextPoller = (index + 1) % this.#gathering.length;
    const poller = this.#gathering[index];
    if (!poller) throw new Error("VirtualRefreshQueue: no poller");
    poller.messages.push(message);
    this.stats.maxBacklog = Math.max(this.stats.maxBacklog, this.backlog);
    if (poller.messages.length >= this.#settings.batchSize) {
      this.#close(index);
    } else if (poller.messages.length === 1) {
      const generation = poller.generation;
      const waitMs = Math.max(this.#settings.batchingWindowMs, LATENCY_MS.sqsReceive);
      this.#clock.at(this.#clock.now() + waitMs, () => {
        if (poller.generation === generation) this.#close(index);
      });
    }
  }

  /** A poller's batch is complete: it waits for room, and the poller starts a new one. */
  #close(index: number): void {
    const poller = this.#gathering[index];
    if (!poller || poller.messages.length === 0) return;
    this.#ready.push(poller.messages);
    poller.messages = [];
    poller.generation += 1;
    this.#invokeWhileRoom();
  }

  #invokeWhileRoom(): void {
    const work = this.#work;
    if (!work) throw new Error("VirtualRefreshQueue: no consumer");
    while (this.#running < this.#settings.maxConcurrency && this.#ready.length > 0) {
      const batch = this.#ready.shift() ?? [];
      const nowMs = this.#clock.now();
      for (const message of batch) {
        this.stats.delivered += 1;
        this.stats.maxLateMs = Math.max(this.stats.maxLateMs, nowMs - message.dueAtMs);
      }
      this.stats.batches += 1;
      this.#counts.sqsReceives += 1;
      this.#running += 1;
      void work(batch).finally(() => {
        this.#running -= 1;
        this.#invokeWhileRoom();
      });
    }
  }
}
