import type { DueChain } from "./chain-store.js";
import type { DispatchClaim } from "./due-chain-work.js";
import type { EngineDeps } from "./engine-deps.js";

/**
 * One chain's work, queued: the worker (refresh-worker.ts) does it when the message arrives.
 * A message for an overdue chain carries the dispatcher's claim (its `redispatchAtMs`), so the
 * worker can tell the claim's re-dispatch time from the chain's own due time.
 */
export interface DueChainMessage extends DispatchClaim {
  readonly connectionId: string;
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
  /**
   * Epoch ms of the schedule's tick this run is for (the EventBridge event's `time`): the slice
   * of due times it queues counts from it, so a late start or a retry of the same tick queues
   * the same slice. @default the engine's clock now
   */
  readonly tickAtMs?: number;
}

export interface DispatchSummary {
  /** Chains the index showed in this tick's slice, or overdue. */
  readonly due: number;
  /** Queued by this run (overdue ones also claimed). */
  readonly dispatched: number;
  /** Overdue, queued, but the claim found the chain claimed or moved by someone else (its message is a harmless duplicate). */
  readonly claimedElsewhere: number;
  /** Left for a later run: the deadline came, or queueing failed. */
  readonly deferred: number;
}

/** The schedule's period (EventBridge `rate(1 minute)`, lib/infra). */
export const SCHEDULE_TICK_MS = 60_000;
/**
 * How far ahead of a chain's due time it is queued: more than one schedule tick, so a window
 * is queued before it opens even by a tick that starts late; the queue's delay holds it until then.
 */
export const DISPATCH_LEAD_MS = 90_000;
/**
 * A chain still at a due time this far past was queued and its work did not move it (a lost
 * message, a worker that died, work that failed or found nothing to do yet): it is queued again,
 * and claimed. The work moves a due time within seconds of it (the worker gets the message at
 * the due time and waits at most WINDOW_WAIT_MS), so a chain this late is not in flight.
 */
export const OVERDUE_AFTER_MS = 60_000;
/**
 * A claimed chain is due again this long after its due time (or the claim, if later), so a lost
 * message or a worker that died is found again; the work itself moves the due time first.
 */
export const REDISPATCH_AFTER_MS = 120_000;
/** The first pause before a failed send is tried again, and the longest (ms). */
const SEND_RETRY_FIRST_MS = 1_000;
const SEND_RETRY_MAX_MS = 8_000;
/** Queue sends and claims in flight at once. */
const DISPATCH_CONCURRENCY = 8;
/** Time kept back at the deadline for the batch in flight. */
const DEADLINE_MARGIN_MS = 2_000;

interface Found extends DueChain {
  /** Overdue: queued with a claim (a conditional write moving its due time to the re-dispatch time). */
  readonly overdue: boolean;
}

/**
 * The refresh door at scale, driven by the schedule (EventBridge, every minute): finds the chains
 * falling due through the sparse index (reads proportional to the chains due, never a scan) and
 * queues each one's work with a delivery delay until it is due; the worker does the work when the
 * message arrives, so no function sleeps for a window.
 *
 * Each tick queues one slice of due times, the minute that entered its lead:
 *
 *   tick T:  …──overdue──┤ T − 60 s │── in flight ──┤ T + 30 s │── this tick's slice ──┤ T + 90 s
 *
 * The slices of ticks a minute apart meet end to end, so a chain that falls due the normal way
 * (a refresh sets the next window 571 s ahead) is queued exactly once and nothing is written for
 * it: the work's own write moves its due time. What the slices miss (a tick that never ran, a
 * due time moved into a slice already queued, a lost message, work that left the due time where
 * it was) is overdue a minute later: queued again first and claimed second (a conditional write
 * moving its due time {@link REDISPATCH_AFTER_MS} on). A failure between the two leaves the chain
 * unclaimed: the next tick queues it again, and the worker treats the second message as the
 * duplicate it is. Queueing first means a chain is never claimed without a message on its way.
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
    const tickMs = options.tickAtMs ?? now();
    const stopAtMs = (options.deadlineMs ?? Number.POSITIVE_INFINITY) - DEADLINE_MARGIN_MS;
    const sliceEndMs = tickMs + DISPATCH_LEAD_MS;
    const [slice, overdue] = await Promise.all([
      store.queryDueChains(sliceEndMs, undefined, sliceEndMs - SCHEDULE_TICK_MS),
      store.queryDueChains(tickMs - OVERDUE_AFTER_MS),
    ]);
    const found: Found[] = [
      ...overdue.map((chain) => ({ ...chain, overdue: true })),
      ...slice.map((chain) => ({ ...chain, overdue: false })),
    ];
    const batches: Found[][] = [];
    for (let i = 0; i < found.length; i += SEND_BATCH_SIZE) batches.push(found.slice(i, i + SEND_BATCH_SIZE));
    const counts = { dispatched: 0, claimedElsewhere: 0, deferred: 0 };
    const next = (): Found[] | undefined => batches.shift();
    const worker = async (): Promise<void> => {
      for (let batch = next(); batch !== undefined; batch = next()) {
        if (now() >= stopAtMs) {
          counts.deferred += batch.length;
          continue;
        }
        await this.#dispatch(batch, stopAtMs, counts);
      }
    };
    await Promise.all(Array.from({ length: DISPATCH_CONCURRENCY }, worker));
    const summary = { due: found.length, ...counts };
    log.info("refresh dispatch finished", { ...summary, overdue: overdue.length });
    return summary;
  }

  /**
   * Sends one batch, again after a failure while the run has time (1 s, 2 s, 4 s, … apart): a
   * slice not queued by its tick is found again only once overdue, after its windows.
   * @returns false when the deadline came first (the batch is then left for the overdue sweep)
   */
  async #send(messages: readonly DueChainMessage[], stopAtMs: number): Promise<boolean> {
    const { now, sleep, log } = this.#deps;
    for (let pauseMs = SEND_RETRY_FIRST_MS; ; pauseMs = Math.min(2 * pauseMs, SEND_RETRY_MAX_MS)) {
      try {
        await this.#queue.send(messages);
        return true;
      } catch (error) {
        const again = now() + pauseMs < stopAtMs;
        log.warn(
          again
            ? "refresh dispatch could not queue a batch; sending it again"
            : "refresh dispatch could not queue a batch before its deadline; it is found again once overdue",
          { chains: messages.length, errorType: error instanceof Error ? error.name : "Error" },
        );
        if (!again) return false;
        await sleep(pauseMs);
      }
    }
  }

  async #dispatch(
    batch: readonly Found[],
    stopAtMs: number,
    counts: { dispatched: number; claimedElsewhere: number; deferred: number },
  ): Promise<void> {
    const { now, store, log } = this.#deps;
    const nowMs = now();
    const messages = batch.map(
      (chain): DueChainMessage => ({
        connectionId: chain.connectionId,
        dueAtMs: chain.dueAtMs,
        ...(chain.overdue ? { redispatchAtMs: Math.max(chain.dueAtMs, nowMs) + REDISPATCH_AFTER_MS } : {}),
        delaySeconds: Math.min(MAX_DELAY_S, Math.max(0, Math.ceil((chain.dueAtMs - nowMs) / 1000))),
      }),
    );
    if (!(await this.#send(messages, stopAtMs))) {
      counts.deferred += batch.length;
      return;
    }
    await Promise.all(
      messages.map(async ({ connectionId, dueAtMs, redispatchAtMs }) => {
        if (redispatchAtMs === undefined) {
          counts.dispatched += 1;
          return;
        }
        try {
          const claimed = await store.unleased.claimDue(connectionId, dueAtMs, redispatchAtMs);
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
