import { type ChainRecord, type InflightNote, LeasePurpose } from "./chain-record.js";

/**
 * How long a vend waits between reads while another invocation holds the chain's lease.
 *
 * A holder making a token call (a refresh or a probe) leaves a write-ahead note with the moment
 * it took the lease, and its new generation lands about one token call later. So a waiter sleeps
 * until then and reads every ~50 ms for 300 ms after it: it sees the new token within about 50 ms
 * of its write, with one or two strongly consistent reads instead of a read on every doubling of
 * a blind backoff; a call later than that is waited for with a backoff from 100 ms to 400 ms. How long "one token call" is the container learns from the chains
 * it has waited for (the time from a note to its token's arrival), starting from Exact's usual.
 * Any other holder (a login, a check) is waited for with a jittered backoff, 25 ms doubling to 400 ms.
 */
export class LeaseWaitSchedule {
  #expectedCallMs = TYPICAL_TOKEN_CALL_MS;

  constructor(private readonly random: () => number) {}

  /** The pauses of one vend's wait (its own backoff; what it learns is the container's). */
  waiter(): LeaseWaiter {
    return new LeaseWaiter(this, this.random);
  }

  /** Milliseconds from a token-calling holder's note to its new generation, as learned so far. */
  get expectedCallMs(): number {
    return this.#expectedCallMs;
  }

  /** A call took `sampleMs` from its note to its token's arrival: an exponentially weighted mean. */
  learn(sampleMs: number): void {
    const sample = Math.min(MAX_EXPECTED_CALL_MS, Math.max(0, sampleMs));
    this.#expectedCallMs = Math.round(this.#expectedCallMs + LEARNING_RATE * (sample - this.#expectedCallMs));
  }
}

/** One vend's wait for another invocation's work. */
export class LeaseWaiter {
  #backoffMs = FIRST_BACKOFF_MS;
  #watched: InflightNote | undefined;

  constructor(
    private readonly schedule: LeaseWaitSchedule,
    private readonly random: () => number,
  ) {}

  /** Milliseconds to sleep before reading `record`'s chain again (`record` is the latest read). */
  pauseMs(record: ChainRecord, nowMs: number): number {
    const call = record.inflight;
    if (call && TOKEN_CALL_PURPOSES.includes(call.purpose)) {
      this.#watched = call;
      const expectedAtMs = call.startedAtMs + this.schedule.expectedCallMs;
      if (expectedAtMs > nowMs) return expectedAtMs - nowMs + Math.round(this.random() * NEAR_POLL_MS);
      if (nowMs - expectedAtMs < NEAR_SPAN_MS) return this.#jittered(NEAR_POLL_MS);
      // Late: a slow Exact or a loaded table; back off from where the near reads left off.
      this.#backoffMs = Math.max(this.#backoffMs, 2 * NEAR_POLL_MS);
    }
    const pause = this.#jittered(this.#backoffMs);
    this.#backoffMs = Math.min(MAX_BACKOFF_MS, this.#backoffMs * 2);
    return pause;
  }

  /** The chain as read after a pause: if the call waited for has landed, the container learns its length. */
  observe(record: ChainRecord): void {
    const watched = this.#watched;
    if (!watched || record.generation <= watched.generation || record.accessIssuedAtMs === undefined) return;
    this.#watched = undefined;
    this.schedule.learn(record.accessIssuedAtMs - watched.startedAtMs);
  }

  /** 0.5 to 1.5 times `ms`, so waiters spread their reads. */
  #jittered(ms: number): number {
    return Math.round(ms * (0.5 + this.random()));
  }
}

/** Holders whose work is one token call: a refresh, a probe. */
const TOKEN_CALL_PURPOSES: readonly LeasePurpose[] = [LeasePurpose.Refresh, LeasePurpose.Probe];
/** A token call to Exact as it usually goes, prepared and answered: the guess before a container has seen one. */
export const TYPICAL_TOKEN_CALL_MS = 400;
/** A learned length above this is a stalled call, not a usual one (the HTTP timeout is 8 s). */
const MAX_EXPECTED_CALL_MS = 5_000;
const LEARNING_RATE = 0.3;
/** Reads around the expected landing: every 25–75 ms … */
const NEAR_POLL_MS = 50;
/** … for this long after it; then the backoff takes over (a slow call, a loaded table, a failed call). */
const NEAR_SPAN_MS = 300;
const FIRST_BACKOFF_MS = 25;
const MAX_BACKOFF_MS = 400;
