import type { DueChain } from "./chain-store.js";
import type { DispatchClaim } from "./due-chain-work.js";
import type { EngineDeps } from "./engine-deps.js";

/**
 * One chain's work, queued: the worker (refresh-worker.ts) does it when the message arrives.
 * The claim lets the worker tell the dispatcher's re-dispatch time from the chain's own due time.
 */
export interface DueChainMessage {
  readonly connectionId: string;
  readonly claim: DispatchClaim;
  /** Seconds the queue holds the message back: until the chain's due time, at most {@link MAX_DELAY_S}. */
  readonly delaySeconds: number;
}

/** Where the dispatcher queues work: SQS in AWS (lib/queue/sqs-refresh-queue.ts). */
export interface RefreshQueue {
  /**
   * Queues the messages (at most {@link SEND_BATCH_SIZE}, one SendMessageBatch).
   * @throws Error when any message could not be queued (the caller leaves those chains unclaimed)
   */
  send(messages: readonly DueChainMessage[]): Promise<void>;
}

/** SQS's longest DelaySeconds (15 minutes). */
export const MAX_DELAY_S = 900;
/** SQS's largest SendMessageBatch. */
export const SEND_BATCH_SIZE = 10;

export interface DispatchOptions {
  /** Epoch ms (the engine's clock) by which the run must end: the Lambda's deadline. */
  readonly deadlineMs?: number;
}

export interface DispatchSummary {
  /** Chains the index showed due within the lead. */
  readonly due: number;
  /** Queued and claimed by this run. */
  readonly dispatched: number;
  /** Queued, but the claim found the chain claimed or moved by someone else (its message is a harmless duplicate). */
  readonly claimedElsewhere: number;
  /** Left for the next run: the deadline came, or queueing failed. */
  readonly deferred: number;
}

/**
 * How far ahead of a chain's due time it is queued: more than one schedule tick (60 s), so a
 * late tick still queues a window before it opens; the queue's delay holds it until then.
 */
export const DISPATCH_LEAD_MS = 90_000;
/**
 * A claimed chain is due again this long after its due time (or the claim, if later), so a lost
 * message or a worker that died is found again; the work itself moves the due time first.
 */
export const REDISPATCH_AFTER_MS = 120_000;
/** Queue sends and claims in flight at once. */
const DISPATCH_CONCURRENCY = 8;
/** Time kept back at the deadline for the batch in flight. */
const DEADLINE_MARGIN_MS = 2_000;

/**
 * The refresh door at scale, driven by the schedule (EventBridge, every minute): finds the chains
 * due within {@link DISPATCH_LEAD_MS} through the sparse index (reads proportional to the chains
 * due, never a scan) and queues each one's work with a delivery delay until it is due; the worker
 * does the work when the message arrives, so no function sleeps for a window.
 *
 * Each chain is queued first and claimed second (a conditional write moving its due time to the
 * re-dispatch time). A failure between the two leaves the chain unclaimed: the next tick queues
 * it again, and the worker treats the second message as the duplicate it is. Queueing first means
 * a chain is never claimed without a message on its way.
 */
export class RefreshDispatch {
  readonly #deps: EngineDeps;
  readonly #queue: RefreshQueue;

  constructor(deps: EngineDeps, queue: RefreshQueue) {
    this.#deps = deps;
    this.#queue = queue;
  }

  async run(options: DispatchOptions = {}): Promise<DispatchSummary> {
    const { now, store, log } = this.#deps;
    const startMs = now();
    const stopAtMs = (options.deadlineMs ?? Number.POSITIVE_INFINITY) - DEADLINE_MARGIN_MS;
    const due = await store.queryDueChains(startMs + DISPATCH_LEAD_MS);
    const batches: DueChain[][] = [];
    for (let i = 0; i < due.length; i += SEND_BATCH_SIZE) batches.push(due.slice(i, i + SEND_BATCH_SIZE));
    const counts = { dispatched: 0, claimedElsewhere: 0, deferred: 0 };
    const next = (): DueChain[] | undefined => batches.shift();
    const worker = async (): Promise<void> => {
      for (let batch = next(); batch !== undefined; batch = next()) {
        if (now() >= stopAtMs) {
          counts.deferred += batch.length;
          continue;
        }
        await this.#dispatch(batch, counts);
      }
    };
    await Promise.all(Array.from({ length: DISPATCH_CONCURRENCY }, worker));
    const summary = { due: due.length, ...counts };
    log.info("refresh dispatch finished", { ...summary });
    return summary;
  }

  async #dispatch(
    batch: readonly DueChain[],
    counts: { dispatched: number; claimedElsewhere: number; deferred: number },
  ): Promise<void> {
    const { now, store, log } = this.#deps;
    const nowMs = now();
    const messages = batch.map(
      (chain): DueChainMessage => ({
        connectionId: chain.connectionId,
        claim: {
          dueAtMs: chain.dueAtMs,
          redispatchAtMs: Math.max(chain.dueAtMs, nowMs) + REDISPATCH_AFTER_MS,
        },
        delaySeconds: Math.min(MAX_DELAY_S, Math.max(0, Math.ceil((chain.dueAtMs - nowMs) / 1000))),
      }),
    );
    try {
      await this.#queue.send(messages);
    } catch (error) {
      counts.deferred += batch.length;
      log.warn("refresh dispatch could not queue a batch; the next run queues it", {
        chains: batch.length,
        errorType: error instanceof Error ? error.name : "Error",
      });
      return;
    }
    await Promise.all(
      messages.map(async ({ connectionId, claim }) => {
        try {
          const claimed = await store.unleased.claimDue(connectionId, claim.dueAtMs, claim.redispatchAtMs);
          counts[claimed ? "dispatched" : "claimedElsewhere"] += 1;
        } catch (error) {
          // Queued but unclaimed: the next run queues it again, and the worker skips the duplicate.
          counts.dispatched += 1;
          log.warn("refresh dispatch could not claim a queued chain", {
            connectionId,
            errorType: error instanceof Error ? error.name : "Error",
          });
        }
      }),
    );
  }
}
