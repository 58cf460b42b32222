import type { ChainAttributes } from "./chain-record.js";
import type { DueChain } from "./chain-store.js";
import type { DispatchClaim } from "./due-chain-work.js";
import type { EngineDeps } from "./engine-deps.js";
import { ChainTable } from "./table-definition.js";

/**
 * One chain's work, queued: the worker (refresh-worker.ts) does it when the message arrives.
 * A message for a claimed chain (overdue, or from the catch-up partition) carries the claim's
 * `redispatchAtMs`, so the worker can tell the claim's re-dispatch time from the chain's own due time.
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
   * @returns the messages the queue refused (SendMessageBatch's `Failed` entries); empty when all were queued
   * @throws Error when the request itself failed: none of the messages may have been queued
   */
  send(messages: readonly DueChainMessage[]): Promise<readonly DueChainMessage[]>;
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
  /** Chains the index showed: in this tick's stretch of due times, overdue, or in catch-up. */
  readonly due: number;
  /** Queued by this run (overdue and catch-up ones also claimed). */
  readonly dispatched: number;
  /** Queued, but the claim found the chain claimed or moved by someone else (its message is a harmless duplicate). */
  readonly claimedElsewhere: number;
  /** Left for a later run: the deadline came before the queue took them. */
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
/**
 * A due time set closer than this to its write goes to the catch-up partition: the dispatcher's
 * cursor may already be past it (the lead), or pass it before the index shows the write (the
 * index is eventually consistent: a tick of margin).
 */
const CATCH_UP_WITHIN_MS = DISPATCH_LEAD_MS + SCHEDULE_TICK_MS;
/** The first pause before a failed send is tried again, and the longest (ms). */
const SEND_RETRY_FIRST_MS = 1_000;
const SEND_RETRY_MAX_MS = 8_000;
/** Queue sends and claims in flight at once. */
const DISPATCH_CONCURRENCY = 8;
/** Time kept back at the deadline for the batch in flight. */
const DEADLINE_MARGIN_MS = 2_000;

/**
 * The due index's attributes for a chain due at `dueAtMs`, set at `nowMs`: in the catch-up
 * partition when the dispatcher's cursor may already be past that time, so the next tick queues
 * it rather than the overdue sweep a minute or two later (a chain made hot just before its
 * window would miss it). Every write that sets a due time goes through here.
 */
export function dueIndexFields(
  dueAtMs: number,
  nowMs: number,
): Pick<ChainAttributes, "dueShard" | "dueAtMs"> {
  const shard =
    dueAtMs <= nowMs + CATCH_UP_WITHIN_MS ? ChainTable.catchUpShardValue : ChainTable.dueShardValue;
  return { dueShard: shard, dueAtMs };
}

/** Counts chains left for a later tick. */
function defer(chains: readonly Found[], counts: Counts): void {
  counts.deferred += chains.length;
  counts.deferredBehindCursor += chains.filter((chain) => !chain.claim).length;
}

interface Found extends DueChain {
  /** Queued with a claim (a conditional write moving its due time to the re-dispatch time). */
  readonly claim: boolean;
}

type Counts = {
  dispatched: number;
  claimedElsewhere: number;
  deferred: number;
  /** Of the deferred, those of this tick's stretch: only they hold the cursor back (the others' index entries bring them back). */
  deferredBehindCursor: number;
};

const earliestFirst = (a: Found, b: Found): number => a.dueAtMs - b.dueAtMs;

/**
 * The refresh door at scale, driven by the schedule (EventBridge, every minute): finds the chains
 * falling due through the sparse index (reads proportional to the chains due, never a scan) and
 * queues each one's work with a delivery delay until it is due; the worker does the work when the
 * message arrives, so no function sleeps for a window.
 *
 * A cursor (dispatch-cursor.ts) says how far the main partition is queued. Each tick queues the
 * due times after it, up to {@link DISPATCH_LEAD_MS} ahead, then moves it there:
 *
 *   tick at T:  …── overdue ──┤ T − 60 s ├── queued by earlier ticks ──┤ cursor ├── this tick ──┤ T + 90 s
 *
 * So a chain that falls due the normal way (a refresh sets the next window 571 s ahead) is
 * queued once, by whichever tick reaches its due time, however late or early ticks run, and
 * nothing is written for it: the work's own write moves its due time. A tick whose queueing
 * fails leaves the cursor where it was, for the next. A due time set within reach of the cursor
 * goes to the small catch-up partition ({@link dueIndexFields}), read whole each tick. What is
 * left (a lost message or worker, work that failed or had nothing to do yet) is overdue a minute
 * later. Catch-up and overdue chains are queued first and claimed second (a conditional write
 * moving the due time {@link REDISPATCH_AFTER_MS} on, into the main partition). A failure between
 * the two leaves the chain unclaimed: the next tick queues it again, and the worker treats the
 * second message as the duplicate it is. Queueing first means a chain is never claimed without a
 * message on its way. Chains still on time (the stretch, catch-up) are queued before the overdue
 * sweep's, so a backlog of late ones cut short by the deadline never defers a window still ahead;
 * only a deferred chain of the stretch holds the cursor back.
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
    const nowMs = now();
    const stopAtMs = (options.deadlineMs ?? Number.POSITIVE_INFINITY) - DEADLINE_MARGIN_MS;
    const cursor = store.dispatchCursor;
    const queuedThroughMs = await cursor.read();
    const throughMs = nowMs + DISPATCH_LEAD_MS;
    // From the cursor, or from where the overdue sweep stops (the first tick, or one after a long
    // pause): older due times are the sweep's.
    const fromMs = Math.max(queuedThroughMs ?? Number.NEGATIVE_INFINITY, nowMs - OVERDUE_AFTER_MS);
    const [stretch, overdue, catchUp] = await Promise.all([
      fromMs < throughMs ? store.queryDueChains(throughMs, undefined, fromMs) : Promise.resolve([]),
      store.queryDueChains(nowMs - OVERDUE_AFTER_MS),
      store.queryDueChains(throughMs, undefined, undefined, ChainTable.catchUpShardValue),
    ]);
    // Chains still on time (this tick's stretch, catch-up) before the overdue sweep, each earliest
    // first: when the deadline cuts a backlog short, what it defers is late already, not a window
    // still ahead.
    const onTime = [
      ...stretch.map((chain): Found => ({ ...chain, claim: false })),
      ...catchUp.map((chain): Found => ({ ...chain, claim: true })),
    ].sort(earliestFirst);
    const late = overdue.map((chain): Found => ({ ...chain, claim: true })).sort(earliestFirst);
    const counts: Counts = { dispatched: 0, claimedElsewhere: 0, deferred: 0, deferredBehindCursor: 0 };
    await this.#dispatchAll([...onTime, ...late], stopAtMs, counts);
    const { deferredBehindCursor, ...summaryCounts } = counts;
    const summary = { due: onTime.length + late.length, ...summaryCounts };
    // Only once every chain of the stretch up to `throughMs` is queued: otherwise the next tick
    // queues it again. A deferred overdue or catch-up chain needs no cursor: the overdue sweep
    // and the catch-up partition are read whole every tick.
    if (deferredBehindCursor === 0 && throughMs > (queuedThroughMs ?? Number.NEGATIVE_INFINITY)) {
      try {
        await cursor.advance(queuedThroughMs, throughMs);
      } catch (error) {
        log.warn("refresh dispatch could not move its cursor; the next tick queues this one's chains again", {
          errorType: error instanceof Error ? error.name : "Error",
        });
      }
    }
    log.info("refresh dispatch finished", { ...summary, overdue: overdue.length, catchUp: catchUp.length });
    return summary;
  }

  async #dispatchAll(found: readonly Found[], stopAtMs: number, counts: Counts): Promise<void> {
    const batches: Found[][] = [];
    for (let i = 0; i < found.length; i += SEND_BATCH_SIZE) batches.push(found.slice(i, i + SEND_BATCH_SIZE));
    const next = (): Found[] | undefined => batches.shift();
    const worker = async (): Promise<void> => {
      for (let batch = next(); batch !== undefined; batch = next()) {
        if (this.#deps.now() >= stopAtMs) {
          defer(batch, counts);
          continue;
        }
        await this.#dispatch(batch, stopAtMs, counts);
      }
    };
    await Promise.all(Array.from({ length: DISPATCH_CONCURRENCY }, worker));
  }

  /** Each chain's message, built now: its delay counts to the due time from the moment it is sent. */
  #messages(chains: readonly Found[]): DueChainMessage[] {
    const nowMs = this.#deps.now();
    return chains.map((chain) => ({
      connectionId: chain.connectionId,
      dueAtMs: chain.dueAtMs,
      ...(chain.claim ? { redispatchAtMs: Math.max(chain.dueAtMs, nowMs) + REDISPATCH_AFTER_MS } : {}),
      delaySeconds: Math.min(MAX_DELAY_S, Math.max(0, Math.ceil((chain.dueAtMs - nowMs) / 1000))),
    }));
  }

  /**
   * Sends one batch; what the queue refused, or all of it when the request failed, is sent
   * again while the run has time (1 s, 2 s, 4 s, … apart), each time with delays counted anew.
   * @returns the messages queued (the rest is deferred to the next tick: the cursor stays)
   */
  async #send(batch: readonly Found[], stopAtMs: number): Promise<DueChainMessage[]> {
    const { now, sleep, log } = this.#deps;
    const queued: DueChainMessage[] = [];
    let pending = batch;
    for (let pauseMs = SEND_RETRY_FIRST_MS; ; pauseMs = Math.min(2 * pauseMs, SEND_RETRY_MAX_MS)) {
      const messages = this.#messages(pending);
      let refused: readonly DueChainMessage[];
      let errorType: string | undefined;
      try {
        refused = await this.#queue.send(messages);
      } catch (error) {
        refused = messages;
        errorType = error instanceof Error ? error.name : "Error";
      }
      const refusedIds = new Set(refused.map((m) => m.connectionId));
      queued.push(...messages.filter((m) => !refusedIds.has(m.connectionId)));
      pending = pending.filter((chain) => refusedIds.has(chain.connectionId));
      if (pending.length === 0) return queued;
      const again = now() + pauseMs < stopAtMs;
      log.warn(
        again
          ? "refresh dispatch could not queue some chains; sending them again"
          : "refresh dispatch could not queue some chains before its deadline; the next tick queues them",
        { chains: pending.length, ...(errorType ? { errorType } : {}) },
      );
      if (!again) return queued;
      await sleep(pauseMs);
    }
  }

  async #dispatch(batch: readonly Found[], stopAtMs: number, counts: Counts): Promise<void> {
    const { store, log } = this.#deps;
    const queued = await this.#send(batch, stopAtMs);
    const queuedIds = new Set(queued.map((message) => message.connectionId));
    defer(
      batch.filter((chain) => !queuedIds.has(chain.connectionId)),
      counts,
    );
    await Promise.all(
      queued.map(async ({ connectionId, dueAtMs, redispatchAtMs }) => {
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
