import { BrokerError } from "../errors.js";
import { type ChainRunOutcome, DueChainWork, noOutcomes } from "./due-chain-work.js";
import type { EngineDeps, HealTrigger } from "./engine-deps.js";
import { HealDoor } from "./heal-door.js";
import { InProcessHealTrigger } from "./heal-trigger.js";
import { HistoryDoor } from "./history-entry.js";
import { CLOCK_SKEW_BOUND_MS } from "./timing.js";

export type { ChainRunOutcome } from "./due-chain-work.js";

export interface RefreshRunOptions {
  /** Chains whose window opens within this horizon are refreshed by this run (default 60 s: one schedule tick). */
  readonly horizonMs?: number;
  /** Chains worked on at once (each may sleep until its window). */
  readonly concurrency?: number;
  /**
   * Epoch ms (injected clock) by which the run must be over: the Lambda's deadline. No chain's
   * work starts, and no sleep lasts, past what can finish before it; the rest waits for the next run.
   */
  readonly deadlineMs?: number;
}

export interface RefreshRunSummary {
  readonly due: number;
  readonly outcomes: Readonly<Record<ChainRunOutcome, number>>;
  /** errorType per failed connection. */
  readonly failures: ReadonlyArray<{ readonly connectionId: string; readonly errorType: string }>;
}

/**
 * The refresh door run in one process, driven by the schedule: finds the chains due within the
 * horizon and does each one's work (due-chain-work.ts), sleeping for windows, 8 at a time. It
 * advances hot chains inside their window so vends rarely wait, refreshes idle chains before
 * their refresh token reaches Exact's 30 days, and finishes the identity check of chains stored
 * as VERIFYING. Used where there is no queue (the CLI, `npm start`, a stack without one); at
 * scale the schedule dispatches to a queue instead (refresh-dispatch.ts, refresh-worker.ts).
 */
export class ScheduledRefresh {
  readonly #deps: EngineDeps;
  readonly #work: DueChainWork;

  constructor(deps: EngineDeps, options: { readonly healTrigger?: HealTrigger } = {}) {
    this.#deps = deps;
    const healTrigger = options.healTrigger ?? new InProcessHealTrigger(() => new HealDoor(deps), deps.log);
    this.#work = new DueChainWork(deps, healTrigger, {
      door: HistoryDoor.Refresh,
      keepDays: deps.config.historyDays,
    });
  }

  async run(options: RefreshRunOptions = {}): Promise<RefreshRunSummary> {
    const { now, store, log, config } = this.#deps;
    const startMs = now();
    const deadlineMs = options.deadlineMs ?? Number.POSITIVE_INFINITY;
    const horizonEndMs = Math.min(startMs + (options.horizonMs ?? 60_000), deadlineMs);
    const ids = await store.queryDue(horizonEndMs);
    const outcomes = noOutcomes();
    const failures: Array<{ connectionId: string; errorType: string }> = [];
    // A chain's work is one lease: it may start only if a whole lease's work can end before the deadline.
    const lastStartMs = deadlineMs - config.leaseMs - CLOCK_SKEW_BOUND_MS;
    const queue = [...ids];
    const worker = async (): Promise<void> => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        if (now() > lastStartMs) {
          outcomes.deferred += 1;
          continue;
        }
        try {
          outcomes[await this.#work.run(id, { horizonEndMs, lastStartMs, deadlineMs })] += 1;
        } catch (error) {
          outcomes.failed += 1;
          const errorType = error instanceof BrokerError ? error.name : "InternalError";
          failures.push({ connectionId: id, errorType });
          log.warn("scheduled refresh failed", { connectionId: id, errorType });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker));
    log.info("scheduled refresh run finished", { due: ids.length, ...outcomes });
    return { due: ids.length, outcomes, failures };
  }
}
