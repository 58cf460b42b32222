import type { VendAnswer } from "../../lib/chain/token-cache.js";
import { BrokerError } from "../../lib/errors.js";
import type { EventClock } from "../support/event-clock.js";
import { type VendMarks, vendMarks } from "./instruments.js";
import type { LambdaModel } from "./lambda-model.js";
import { MIN_VALIDITY_S } from "./model.js";

/** Which sampled vend: the consumer's first (right after the seed), one per generation, or a burst's. */
export type VendKind = "first" | "sampled" | "burst";

export interface VendStats {
  vends: number;
  byKind: Record<VendKind, number>;
  /** Vends that waited for a refresh: made a token call, slept, or got no token (see {@link Consumers}). */
  waits: number;
  madeTokenCall: number;
  slept: number;
  failed: number;
  /** Failed vends by error name. */
  failures: Record<string, number>;
}

function emptyVendStats(): VendStats {
  return {
    vends: 0,
    byKind: { first: 0, sampled: 0, burst: 0 },
    waits: 0,
    madeTokenCall: 0,
    slept: 0,
    failed: 0,
    failures: {},
  };
}

export interface ConsumerModel {
  /** Share of chains (per generation) that also vend in a burst around the window. */
  readonly burstShare: number;
  readonly burstVends: number;
  /** A token's life (ms): 600 s at Exact. */
  readonly tokenLifeMs: number;
  /** From a token's arrival to its refresh window (ms): life − window + margin, 571 s. */
  readonly windowAfterArrivalMs: number;
}

/**
 * Vends start on whole seconds of the virtual clock: vends of many chains then start together and
 * their I/O runs concurrently (EventClock `together`), which is what keeps 10,000 chains fast.
 */
function onTheSecond(ms: number): number {
  return Math.ceil(ms / 1000) * 1000;
}

/** A token-vend consumer that retries in this long when its vend did not show a new generation. */
const RETRY_MS = 30_000;

/**
 * The consumers, sampled: a hot consumer vends many times a generation, and all but the first of
 * them are the same read (or a warm container's memory). So each chain's consumer vends once when
 * seeded, then once per generation at a random moment of that generation's validity before its
 * window (the vend that keeps the chain hot: the engine calls a chain hot when it was vended within
 * its token's life), and a share of them (`burstShare`) also vend `burstVends` times around each
 * window: from 35 s before the token expires to 5 s before, across the moment it drops below the
 * 20 s asked for (MIN_VALIDITY_S). Each vend is one token-vend invocation (its own container while
 * it runs), with the handler's deadline.
 *
 * A vend waited for a refresh when it made a token call itself, slept on the clock (for a window
 * to open, or polling while another holder's lease or refresh was in flight: the vend door's
 * only sleeps), or got no token (a retryable error: ChainBusy, Throttled, ExactUnavailable).
 */
export class Consumers {
  readonly #clock: EventClock;
  readonly #vendFn: LambdaModel;
  readonly #random: () => number;
  readonly #model: ConsumerModel;
  readonly #stopAtMs: number;
  readonly #crash: (what: string, error: unknown) => void;
  #stats = emptyVendStats();
  /** Chains vended at least once. */
  readonly vended = new Set<string>();

  constructor(options: {
    readonly clock: EventClock;
    readonly vendFn: LambdaModel;
    readonly random: () => number;
    readonly model: ConsumerModel;
    /** No vend starts at or after this. */
    readonly stopAtMs: number;
    readonly crash: (what: string, error: unknown) => void;
  }) {
    this.#clock = options.clock;
    this.#vendFn = options.vendFn;
    this.#random = options.random;
    this.#model = options.model;
    this.#stopAtMs = options.stopAtMs;
    this.#crash = options.crash;
  }

  /** The stats since the last call; a vend counts in the stretch it ended in. */
  take(): VendStats {
    const taken = this.#stats;
    this.#stats = emptyVendStats();
    return taken;
  }

  /** One chain's consumer, from its first vend (now) until the stop. */
  async run(connectionId: string): Promise<void> {
    const clock = this.#clock;
    const { tokenLifeMs, windowAfterArrivalMs, burstShare } = this.#model;
    let kind: VendKind = "first";
    let seenGeneration = 0;
    while (clock.now() < this.#stopAtMs) {
      const answer = await this.#vend(connectionId, kind);
      kind = "sampled";
      let nextAtMs = clock.now() + RETRY_MS;
      if (answer && answer.generation > seenGeneration) {
        seenGeneration = answer.generation;
        const expiresAtMs = Date.parse(answer.expiresAt);
        if (this.#random() < burstShare) this.#burst(connectionId, expiresAtMs);
        // The next generation arrives about when this one's window opens; its vend comes at a
        // random moment of its validity before its own window.
        const nextArrivalMs = expiresAtMs - tokenLifeMs + windowAfterArrivalMs;
        nextAtMs = Math.max(
          clock.now(),
          onTheSecond(nextArrivalMs + 2_000 + this.#random() * (windowAfterArrivalMs - 10_000)),
        );
      }
      if (nextAtMs >= this.#stopAtMs) return;
      await clock.sleepUntil(nextAtMs);
    }
  }

  #burst(connectionId: string, expiresAtMs: number): void {
    const { burstVends } = this.#model;
    for (let j = 0; j < burstVends; j += 1) {
      const atMs = onTheSecond(expiresAtMs - 35_000 + (burstVends > 1 ? (j * 30_000) / (burstVends - 1) : 0));
      if (atMs < this.#clock.now() || atMs >= this.#stopAtMs) continue;
      this.#clock.at(atMs, () => {
        this.#vend(connectionId, "burst").catch((error: unknown) => this.#crash("burst vend", error));
      });
    }
  }

  async #vend(connectionId: string, kind: VendKind): Promise<VendAnswer | undefined> {
    const marks: VendMarks = { tokenCalls: 0, sleptMs: 0 };
    let answer: VendAnswer | undefined;
    let failure: string | undefined;
    await this.#vendFn.invoke((broker, deadlineMs) =>
      vendMarks.run(marks, async () => {
        try {
          answer = await broker.vend.vend(connectionId, MIN_VALIDITY_S, { deadlineMs });
        } catch (error) {
          if (!(error instanceof BrokerError) || !error.retryable) throw error;
          failure = error.name;
        }
      }),
    );
    const stats = this.#stats;
    stats.vends += 1;
    stats.byKind[kind] += 1;
    this.vended.add(connectionId);
    if (marks.tokenCalls > 0) stats.madeTokenCall += 1;
    if (marks.sleptMs > 0) stats.slept += 1;
    if (failure !== undefined) {
      stats.failed += 1;
      stats.failures[failure] = (stats.failures[failure] ?? 0) + 1;
    }
    if (marks.tokenCalls > 0 || marks.sleptMs > 0 || failure !== undefined) stats.waits += 1;
    return answer;
  }
}
