import type { Broker } from "../../lib/broker.js";
import { DEADLINE_MARGIN_MS } from "../../lib/handlers/deadline.js";
import type { EventClock } from "../support/event-clock.js";

/** One function's invocations over a stretch of the run. */
export interface InvocationStats {
  invocations: number;
  /** Sum of the runs' durations (virtual ms): what Lambda bills. */
  billedMs: number;
  maxRunMs: number;
  /** Runs longer than the function's timeout (Lambda would have killed them). */
  overruns: number;
  maxConcurrent: number;
}

export function emptyInvocationStats(): InvocationStats {
  return { invocations: 0, billedMs: 0, maxRunMs: 0, overruns: 0, maxConcurrent: 0 };
}

/**
 * A Lambda function on the virtual clock: warm containers (each a broker, as one container
 * builds it) that run one invocation at a time, a new one when all are busy. Each invocation gets
 * its deadline as the handler computes it (lib/handlers/deadline.ts): start + timeout − margin.
 * Cold starts are not modelled.
 */
export class LambdaModel {
  readonly name: string;
  readonly timeoutMs: number;
  readonly #clock: EventClock;
  readonly #newContainer: () => Broker;
  readonly #idle: Broker[] = [];
  #containers = 0;
  #running = 0;
  /** Stats of the current stretch (see {@link LambdaModel.take}). */
  #stats = emptyInvocationStats();

  constructor(name: string, timeoutMs: number, clock: EventClock, newContainer: () => Broker) {
    this.name = name;
    this.timeoutMs = timeoutMs;
    this.#clock = clock;
    this.#newContainer = newContainer;
  }

  get containers(): number {
    return this.#containers;
  }

  get running(): number {
    return this.#running;
  }

  async invoke<T>(handler: (broker: Broker, deadlineMs: number) => Promise<T>): Promise<T> {
    let broker = this.#idle.pop();
    if (!broker) {
      broker = this.#newContainer();
      this.#containers += 1;
    }
    const stats = this.#stats;
    const startMs = this.#clock.now();
    this.#running += 1;
    stats.maxConcurrent = Math.max(stats.maxConcurrent, this.#running);
    try {
      return await handler(broker, startMs + this.timeoutMs - DEADLINE_MARGIN_MS);
    } finally {
      const runMs = this.#clock.now() - startMs;
      this.#running -= 1;
      stats.invocations += 1;
      stats.billedMs += runMs;
      stats.maxRunMs = Math.max(stats.maxRunMs, runMs);
      if (runMs > this.timeoutMs) stats.overruns += 1;
      this.#idle.push(broker);
    }
  }

  /** The stats since the last call; a run counts in the stretch it started in (updated when it ends). */
  take(): InvocationStats {
    const taken = this.#stats;
    this.#stats = emptyInvocationStats();
    return taken;
  }
}
