import { LEASE_HEADROOM_MS } from "../config-timing.js";
import { ChainBusy } from "../errors.js";
import type { EventReason } from "../events/broker-events.js";
import {
  type ChainAttributeName,
  type ChainAttributes,
  type ChainRecord,
  ChainStatus,
  type InflightNote,
  LeasePurpose,
} from "./chain-record.js";
import { type LeaseWriter, retryWithin } from "./chain-table-client.js";
import { type HistoryNote, HistoryOutcome } from "./history-entry.js";
import { type SessionHistory, withEntry } from "./history-log.js";
import { LEASE_ATTRS, RELEASE, rescueCondition, type Transition } from "./lease-transitions.js";
import type { CommitResult, LeaseSessionOptions } from "./persisting-writes.js";
import {
  type RefreshedChain,
  refreshed,
  releaseOnFence,
  type StartedChainArgs,
  startedChain,
  startedChainCondition,
} from "./persisting-writes.js";
import { CLOCK_SKEW_BOUND_MS } from "./timing.js";
import { CallLedger } from "./token-call-cap.js";

/**
 * What a VERIFYING or BLOCKED chain carries besides its tokens (its verification note, when it
 * started, why it is BLOCKED): a rescued refresh of such a chain writes it again.
 */
function unverifiedChain(record: ChainRecord, status: ChainStatus): Partial<ChainAttributes> {
  return {
    ...(record.verification ? { verification: record.verification } : {}),
    ...(record.chainStartedAtMs !== undefined ? { chainStartedAtMs: record.chainStartedAtMs } : {}),
    ...(status === ChainStatus.Blocked && record.statusReason ? { statusReason: record.statusReason } : {}),
  };
}

/**
 * The one object through which anything is written under a chain's lease, from the acquire
 * (ChainStore.acquire) to the write that ends it. Each transition is one UpdateItem conditional
 * on this holder's fence, the generation it works on and the connection's incarnation; a
 * transition that finds them changed reports it and writes nothing. `end()` runs in a `finally`
 * (ChainStore.withLease) and frees the lease on every path a transition did not.
 *
 * The session also knows its time: the lease's end on a conservative clock (minus the skew
 * bound) and the invocation's deadline, each minus the headroom for the write that must follow
 * a call. Nothing external starts that cannot end before then ({@link requireTime}).
 */
export class LeaseSession {
  readonly #writer: LeaseWriter;
  readonly #now: () => number;
  readonly #deadlineMs: number;
  /** The item as it was just before this lease was taken (ALL_OLD). */
  readonly record: ChainRecord;
  readonly connectionId: string;
  readonly owner: string;
  readonly fence: number;
  readonly incarnation: string;
  #purpose: LeasePurpose;
  #untilMs: number;
  #generation: number;
  #ended = false;
  /** An Exact call that may have changed the chain was made and its outcome is not stored yet. */
  #unrecorded = false;
  readonly #calls: CallLedger;
  readonly #sleep: (ms: number) => Promise<void>;
  /** This lease's part in the connection's history: every outcome-recording write carries its entry. */
  readonly history: SessionHistory;

  constructor(options: LeaseSessionOptions) {
    this.history = options.history;
    this.#writer = options.writer;
    this.#now = options.now;
    this.#sleep = options.sleep;
    this.#deadlineMs = options.deadlineMs ?? Number.POSITIVE_INFINITY;
    this.record = options.record;
    this.connectionId = options.record.connectionId;
    this.owner = options.owner;
    this.fence = options.fence;
    this.incarnation = options.incarnation;
    this.#purpose = options.purpose;
    this.#untilMs = options.untilMs;
    this.#generation = options.record.generation;
    this.#calls = new CallLedger(options.record, options.now);
  }

  get purpose(): LeasePurpose {
    return this.#purpose;
  }

  /** The generation this holder works on: the acquired one, or the one its chain start created. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Milliseconds this holder may still spend on work that a write must follow (≤ 0: none).
   * With `renewedForMs`: as it would be once the lease is renewed for that long now (the
   * invocation's deadline still bounds it), to decide before a renewal whether it is worth one.
   */
  remainingMs(renewedForMs?: number): number {
    const nowMs = this.#now();
    const untilMs = renewedForMs === undefined ? this.#untilMs : nowMs + renewedForMs;
    return Math.min(untilMs - CLOCK_SKEW_BOUND_MS, this.#deadlineMs) - LEASE_HEADROOM_MS - nowMs;
  }

  /**
   * @param renewedForMs judge as if the lease were renewed for this long now (see {@link remainingMs})
   * @throws ChainBusy (retryable) when `needMs` of work cannot end inside the lease and the invocation.
   */
  requireTime(needMs: number, what: string, renewedForMs?: number): void {
    const remaining = this.remainingMs(renewedForMs);
    if (remaining >= needMs) return;
    throw new ChainBusy(
      `connection "${this.connectionId}": not enough time left for ${what} (${Math.max(0, Math.floor(remaining))} ms of ${needMs} ms); nothing was sent`,
      { retryAfterSeconds: 1 },
    );
  }

  /** Extends the lease for longer work (a probe, a login), with the status that work shows. */
  async renew(
    purpose: LeasePurpose,
    leaseMs: number,
    mark?: { readonly status: ChainStatus; readonly statusReason?: EventReason },
  ): Promise<boolean> {
    const untilMs = this.#now() + leaseMs;
    // A chain found SUSPECT only now (its previous holder vanished under its note) is an outcome.
    const suspected = mark?.status === ChainStatus.Suspect && this.record.status !== ChainStatus.Suspect;
    const ok = await this.#write({
      set: {
        ...this.#leaseSet(purpose, untilMs),
        ...(mark ? { status: mark.status, statusChangedAtMs: this.#now() } : {}),
        ...(mark?.statusReason ? { statusReason: mark.statusReason } : {}),
      },
      ends: false,
      purpose,
      ...(suspected
        ? {
            history: {
              outcome: HistoryOutcome.Suspect,
              ...(mark.statusReason ? { reason: mark.statusReason } : {}),
            },
          }
        : {}),
    });
    if (ok) {
      this.#purpose = purpose;
      this.#untilMs = untilMs;
    }
    return ok;
  }

  /**
   * The persisting write of a refresh or probe: Exact's new tokens in, the generation up by one,
   * the lease out. If the fence moved (this holder stalled past its lease) the tokens may still
   * be the only live chain: they land when the generation is unchanged and no chain-starting
   * holder (a login, a code exchange) has had the lease since, whose chain always wins.
   */
  async commitRefresh(args: RefreshedChain): Promise<CommitResult> {
    const generation = this.#generation + 1;
    const change = refreshed(args, this.#now());
    const set = { ...change.set, ...this.#calls.attributes() };
    const { remove } = change;
    const computed = ["#generation = #generation + :one"];
    const history: HistoryNote = { outcome: HistoryOutcome.Refreshed };
    if (await this.#persist(() => this.#write({ set, remove, computed, ends: true, history }))) {
      this.#generation = generation;
      return "committed";
    }
    const rescue = rescueCondition(this.#generation, this.incarnation);
    // Not on this holder's fence: its knowledge of the item's history may be stale, so it appends.
    const entry = this.history.entry(history, this.#purpose, { generation, set, remove });
    const rescued = await this.#persist(() =>
      this.#writer(
        this.connectionId,
        withEntry(
          {
            // After the chain's death gave the connection back, what that death removed comes back too.
            set: { ...set, ...unverifiedChain(this.record, args.status) },
            remove,
            computed,
            ...rescue,
            values: { ...rescue.values, one: 1 },
          },
          entry,
        ),
        "ALL_NEW",
      ),
    );
    if (!rescued) return "superseded";
    this.history.learned(entry, rescued, true);
    this.#generation = generation;
    return "committed_after_lease_lost";
  }

  /**
   * The persisting write of a chain start (a login's code exchange or token, a seed): Exact's
   * new chain in as VERIFYING at the next generation, whatever the generation was (a new chain
   * at Exact ends every older one), and the lease kept for the `/current/Me` check.
   * @returns false when another holder took the lease meanwhile (the chain is then not stored)
   */
  async storeStartedChain(args: StartedChainArgs): Promise<boolean> {
    const nowMs = this.#now();
    const untilMs = nowMs + args.leaseMs;
    const chain = startedChain(args, nowMs, this.#leaseSet(LeasePurpose.Verify, untilMs));
    const write = { ...chain, set: { ...chain.set, ...this.#calls.attributes() } };
    const held = { fence: this.fence, incarnation: this.incarnation };
    // A chain start lands whatever the generation: it appends its entry (history-log.ts).
    const entry = this.history.entry({ outcome: HistoryOutcome.ChainStarted }, this.#purpose, {
      generation: this.#generation + 1,
      set: write.set,
      remove: write.remove,
    });
    const condition = startedChainCondition(held, args.note.startedAtMs);
    const stored = await this.#persist(() =>
      this.#writer(this.connectionId, withEntry({ ...write, ...condition }, entry), "ALL_NEW"),
    );
    if (stored) this.history.learned(entry, stored, true);
    this.#unrecorded = false;
    if (!stored) {
      // Either the fence moved (the lease is someone else's) or a later chain is stored: then
      // the lease is still ours to end.
      await this.#writer(this.connectionId, releaseOnFence(held));
      this.#ended = true;
      return false;
    }
    this.#generation = stored.generation;
    this.#purpose = LeasePurpose.Verify;
    this.#untilMs = untilMs;
    return true;
  }

  /**
   * The write that ends the lease with `transition` (lease-transitions.ts), conditional on this
   * holder's fence, generation and incarnation.
   * @returns false when someone else holds the lease now (nothing was written)
   */
  async finish(transition: Transition): Promise<boolean> {
    const ok = await this.#persist(() => this.#write({ ...transition, ends: true }));
    if (ok && transition.computed?.length) this.#generation += 1;
    return ok;
  }

  /** Writes `transition` and keeps the lease (a step the next holder must be able to resume from). */
  async keep(transition: Transition): Promise<boolean> {
    return this.#persist(() => this.#write({ ...transition, ends: false }));
  }

  /** Ends the lease with nothing else written. */
  async release(): Promise<boolean> {
    return this.finish(RELEASE);
  }

  /**
   * Marks that a call which may change the chain at Exact (a token call, a code exchange, a
   * login) is about to be made. Until a transition records its outcome, a session that ends
   * (the recording write failed for good, or the code threw) keeps its lease and write-ahead
   * note until the lease expires: the next holder then probes, instead of trusting a refresh
   * token Exact may have retired.
   */
  callStarted(call: { readonly tokenEndpoint: boolean }): void {
    this.#unrecorded = true;
    // Counted against Exact's daily cap by every later write of this session (token-call-cap.ts).
    if (call.tokenEndpoint) this.#calls.count();
    if (call.tokenEndpoint) this.history.tokenCallMade();
  }

  /** The chain's token calls today after this holder's (what its writes store). */
  get tokenCallsToday(): number {
    return this.#calls.today;
  }

  /** True once after this holder's token calls reached the daily warning (token-call-cap.ts warnIfHigh). */
  takeTokenCallsWarning(): boolean {
    return this.#calls.takeWarning();
  }

  /**
   * Frees the lease unless a transition already ended it, or an Exact call's outcome went
   * unrecorded; then, off the lease, writes the history item of the generation it reached, if it
   * advanced the chain (history-log.ts). For `finally`. Never throws.
   */
  async end(): Promise<void> {
    if (!this.#ended && !this.#unrecorded) {
      try {
        await this.release();
      } catch {
        // The lease expires by itself; the error that brought us here is the one to report.
        this.#ended = true;
      }
    }
    await this.history.flush();
  }

  /** A persisting write, tried again while the lease lasts (chain-table-client.ts: retryWithin). */
  #persist<T>(write: () => Promise<T>): Promise<T> {
    return retryWithin(
      write,
      () => Math.min(this.#untilMs - CLOCK_SKEW_BOUND_MS, this.#deadlineMs) - this.#now(),
      this.#sleep,
    );
  }

  #leaseSet(purpose: LeasePurpose, untilMs: number): Partial<ChainAttributes> {
    const note: InflightNote = {
      owner: this.owner,
      generation: this.#generation,
      purpose,
      startedAtMs: this.#now(),
    };
    return { leasePurpose: purpose, leaseUntilMs: untilMs, inflight: note };
  }

  async #write(parts: {
    readonly set?: Partial<ChainAttributes>;
    readonly remove?: readonly ChainAttributeName[];
    readonly computed?: readonly string[];
    readonly ends: boolean;
    readonly history?: HistoryNote;
    /** The purpose the write's entry names (a renewal's new one). @default the lease's */
    readonly purpose?: LeasePurpose;
  }): Promise<boolean> {
    if (this.#ended) return false;
    const purpose = parts.purpose ?? this.#purpose;
    const bumps = parts.computed !== undefined && parts.computed.length > 0;
    const effect = { generation: this.#generation + (bumps ? 1 : 0), set: parts.set, remove: parts.remove };
    const recorded = this.history.recordFor(parts.history, purpose, effect, bumps);
    const written = await this.#writer(this.connectionId, {
      set: { ...parts.set, ...this.#calls.attributes(), ...(recorded ? { history: recorded.log } : {}) },
      remove: [...(parts.ends ? LEASE_ATTRS : []), ...(parts.remove ?? [])],
      ...(parts.computed ? { computed: parts.computed } : {}),
      condition: "#leaseFence = :fence AND #generation = :gen AND #incarnation = :inc",
      names: ["leaseFence", "generation", "incarnation"],
      values: {
        fence: this.fence,
        gen: this.#generation,
        inc: this.incarnation,
        ...(parts.computed ? { one: 1 } : {}),
      },
    });
    // A failed condition means someone else holds the lease now: it is not ours to end any more.
    if (parts.ends || !written) this.#ended = true;
    if (written) this.history.landed(recorded, effect, bumps);
    return written !== undefined;
  }
}
