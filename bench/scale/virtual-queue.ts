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
}

/** What the queue saw of its messages. */
export interface QueueStats {
  sent: number;
  delivered: number;
  /** Most messages visible but not yet handed to an invocation at one moment. */
  maxBacklog: number;
  /** Longest time a message waited from its due time (the claim's) to its invocation (ms). */
  maxLateMs: number;
}

/**
 * The dispatcher's SQS queue and the worker's event source, on the virtual clock (moto runs SQS
 * delays in real time; the SQS adapter itself is tested against moto, test/queue/). A message is
 * visible `DelaySeconds` after its SendMessageBatch was accepted; the event source polls
 * (LATENCY_MS.sqsReceive after a message became visible) and invokes the worker with up to
 * `batchSize` visible messages, while fewer than `maxConcurrency` invocations run. Delivery is
 * exactly once here: SQS's at-least-once duplicates are the worker's tests' business.
 */
export class VirtualRefreshQueue implements RefreshQueue {
  stats: QueueStats = { sent: 0, delivered: 0, maxBacklog: 0, maxLateMs: 0 };
  readonly #clock: EventClock;
  readonly #counts: CallCounts;
  readonly #settings: EventSourceSettings;
  readonly #visible: DueChainMessage[] = [];
  #head = 0;
  #running = 0;
  #pollAtMs: number | undefined;
  #work: ((messages: DueChainMessage[]) => Promise<unknown>) | undefined;

  constructor(clock: EventClock, counts: CallCounts, settings: EventSourceSettings) {
    this.#clock = clock;
    this.#counts = counts;
    this.#settings = settings;
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
        this.#clock.at(acceptedAtMs + message.delaySeconds * 1000, () => {
          this.#visible.push({ ...message, delaySeconds: 0 });
          this.#poll();
        });
      }
    }, LATENCY_MS.sqsSend);
    return [];
  }

  /** The stats since the last call. */
  take(): QueueStats {
    const taken = this.stats;
    this.stats = { sent: 0, delivered: 0, maxBacklog: 0, maxLateMs: 0 };
    return taken;
  }

  get backlog(): number {
    return this.#visible.length - this.#head;
  }

  /** The event source's next poll, if none is coming. */
  #poll(): void {
    this.stats.maxBacklog = Math.max(this.stats.maxBacklog, this.backlog);
    if (this.#pollAtMs !== undefined) return;
    this.#pollAtMs = this.#clock.now() + LATENCY_MS.sqsReceive;
    this.#clock.at(this.#pollAtMs, () => {
      this.#pollAtMs = undefined;
      this.#invokeWhileRoom();
    });
  }

  #invokeWhileRoom(): void {
    const work = this.#work;
    if (!work) throw new Error("VirtualRefreshQueue: no consumer");
    while (this.#running < this.#settings.maxConcurrency && this.backlog > 0) {
      const batch = this.#visible.slice(this.#head, this.#head + this.#settings.batchSize);
      this.#head += batch.length;
      if (this.#head > 10_000) {
        this.#visible.splice(0, this.#head);
        this.#head = 0;
      }
      const nowMs = this.#clock.now();
      for (const message of batch) {
        this.stats.delivered += 1;
        this.stats.maxLateMs = Math.max(this.stats.maxLateMs, nowMs - message.dueAtMs);
      }
      this.#running += 1;
      void work(batch).finally(() => {
        this.#running -= 1;
        if (this.backlog > 0) this.#invokeWhileRoom();
      });
    }
  }
}
