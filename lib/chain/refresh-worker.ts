import { WINDOW_WAIT_MS } from "../config-timing.js";
import { BrokerError } from "../errors.js";
import { type ChainRunOutcome, DueChainWork, noOutcomes } from "./due-chain-work.js";
import type { EngineDeps, HealTrigger } from "./engine-deps.js";
import { HistoryDoor } from "./history-entry.js";
import type { DueChainMessage } from "./refresh-dispatch.js";
import { CLOCK_SKEW_BOUND_MS } from "./timing.js";

export interface RefreshWorkerSummary {
  readonly outcomes: Readonly<Record<ChainRunOutcome, number>>;
  /** errorType per failed connection. */
  readonly failures: ReadonlyArray<{ readonly connectionId: string; readonly errorType: string }>;
}

/**
 * The queue's worker (SQS → Lambda, bounded concurrency): does each queued chain's work
 * (due-chain-work.ts), all of a batch at once. A refusal that only asks to wait is retried in the
 * run while the window is open (due-chain-work.ts); a failure is recorded on the chain, whose
 * due time stays where it was, so the dispatcher's overdue sweep queues it again and no message
 * is handed back to the queue for a retry. Work that would start too close to the deadline is
 * `deferred` the same way.
 */
export class RefreshWorker {
  readonly #deps: EngineDeps;
  readonly #work: DueChainWork;

  constructor(deps: EngineDeps, healTrigger: HealTrigger) {
    this.#deps = deps;
    this.#work = new DueChainWork(deps, healTrigger, {
      door: HistoryDoor.Refresh,
      keepDays: deps.config.historyDays,
    });
  }

  /**
   * @param deadlineMs epoch ms (the engine's clock): the Lambda's deadline
   */
  async run(messages: readonly DueChainMessage[], deadlineMs: number): Promise<RefreshWorkerSummary> {
    const { now, log, config } = this.#deps;
    const outcomes = noOutcomes();
    const failures: Array<{ connectionId: string; errorType: string }> = [];
    const lastStartMs = deadlineMs - config.leaseMs - CLOCK_SKEW_BOUND_MS;
    await Promise.all(
      messages.map(async ({ connectionId, dueAtMs, redispatchAtMs }) => {
        const nowMs = now();
        if (nowMs > lastStartMs) {
          outcomes.deferred += 1;
          return;
        }
        const horizonEndMs = nowMs + WINDOW_WAIT_MS;
        try {
          outcomes[
            await this.#work.run(connectionId, {
              horizonEndMs,
              lastStartMs,
              deadlineMs,
              dispatched: { dueAtMs, ...(redispatchAtMs !== undefined ? { redispatchAtMs } : {}) },
            })
          ] += 1;
        } catch (error) {
          outcomes.failed += 1;
          const errorType = error instanceof BrokerError ? error.name : "InternalError";
          failures.push({ connectionId, errorType });
          log.warn("refresh worker: chain work failed", { connectionId, errorType });
        }
      }),
    );
    log.info("refresh worker batch finished", { chains: messages.length, ...outcomes });
    return { outcomes, failures };
  }
}
