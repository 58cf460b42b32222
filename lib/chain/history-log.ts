import { DEFAULT_HISTORY_DAYS } from "../config.js";
import {
  type ChainAttributeName,
  type ChainAttributes,
  type ChainRecord,
  ChainStatus,
  LeasePurpose,
} from "./chain-record.js";
import {
  type HistoryContext,
  HistoryDoor,
  type HistoryEntry,
  type HistoryNote,
  HistoryOutcome,
  MAX_PENDING_ENTRIES,
  mergeEntries,
} from "./history-entry.js";
import type { HistoryBatch, HistoryStore } from "./history-store.js";
import type { UpdateParts } from "./update-expression.js";

/** The door of a lease taken outside one (tests, tools), by what it was taken for. */
function doorOf(purpose: LeasePurpose): HistoryDoor {
  if (purpose === LeasePurpose.Heal || purpose === LeasePurpose.Login) return HistoryDoor.Heal;
  return purpose === LeasePurpose.Onboard ? HistoryDoor.Seed : HistoryDoor.Refresh;
}

/** What a write changes that an entry reports: the chain as it is after the write. */
export interface WriteEffect {
  readonly generation: number;
  readonly set?: Partial<ChainAttributes>;
  readonly remove?: readonly ChainAttributeName[];
}

/** A write's entry and the chain item's `history` that write sets (see {@link SessionHistory.replaced}). */
export interface Recorded {
  readonly entry: HistoryEntry;
  readonly log: readonly HistoryEntry[];
}

const HEALTHY: ReadonlySet<ChainStatus> = new Set([
  ChainStatus.Active,
  ChainStatus.Verifying,
  ChainStatus.Blocked,
]);

/**
 * One lease's part in the connection's history (the protocol is drawn in history-store.ts): the
 * chain item's `history` list as this holder knows it, the entry each of its outcome-recording
 * writes adds to it, and the one history item written when the lease has ended, if it advanced
 * the generation.
 *
 * A write conditional on this holder's fence and generation sets the whole list from what the
 * holder knows, which is exact while those hold (every other write that touches the list bumps
 * the generation). A write without that condition (a chain start, a stalled holder's rescue, a
 * hand-over landing on another connection) appends with `list_append` and returns the item, so
 * the holder learns the list as stored.
 */
export class SessionHistory {
  readonly #store: HistoryStore;
  readonly #context: HistoryContext;
  readonly #now: () => number;
  readonly #connectionId: string;
  readonly #incarnation: string;
  /** The generation the lease was taken at: a commit drops only entries of earlier generations. */
  readonly #fromGeneration: number;
  /** The chain item's `history` as this holder knows it. */
  #known: readonly HistoryEntry[];
  /** Every entry this holder saw or added: what its history item holds. */
  #seen: HistoryEntry[];
  #status: ChainStatus;
  #refreshHash: string | undefined;
  /** The generation this holder's last bump reached (the key of its history item). */
  #reached: number | undefined;
  #tokenCall = false;
  /** History items of other connections this lease changed (a hand-over landing there). */
  readonly #peers: HistoryBatch[] = [];
  #flushed = false;

  constructor(options: {
    readonly store: HistoryStore;
    /** @default the door the purpose implies, kept DEFAULT_HISTORY_DAYS */
    readonly context?: HistoryContext;
    readonly purpose: LeasePurpose;
    /** The item as it was just before the lease was taken. */
    readonly record: ChainRecord;
    readonly incarnation: string;
    readonly now: () => number;
  }) {
    const { record } = options;
    this.#store = options.store;
    this.#context = options.context ?? { door: doorOf(options.purpose), keepDays: DEFAULT_HISTORY_DAYS };
    this.#now = options.now;
    this.#connectionId = record.connectionId;
    this.#incarnation = options.incarnation;
    this.#fromGeneration = record.generation;
    this.#known = record.history ?? [];
    this.#seen = [...this.#known];
    this.#status = record.status;
    this.#refreshHash = record.refreshHash;
  }

  /** A token-endpoint call was made under this lease (a probe's outcome is only recorded after one). */
  tokenCallMade(): void {
    this.#tokenCall = true;
  }

  /**
   * What a write conditional on this holder's fence and generation records, and the `history` it
   * sets: the list as known plus its entry (exact while that condition holds). Its note is its
   * own or, for a probe that made its call, the probe's outcome read from the status it writes
   * (alive: a status Exact's answer proved healthy; inconclusive: none). Once this lease bumps,
   * entries of generations before the one it started from go (its history item and the previous
   * committer's hold them); the oldest go beyond MAX_PENDING_ENTRIES.
   * @returns undefined when the write records nothing (a backoff, a renewal, a release)
   */
  recordFor(
    given: HistoryNote | undefined,
    purpose: LeasePurpose,
    effect: WriteEffect,
    bumps: boolean,
  ): Recorded | undefined {
    const note = given ?? this.#probeNote(purpose, effect.set);
    if (!note) return undefined;
    const entry = this.entry(note, purpose, effect);
    const pruning = bumps || this.#reached !== undefined;
    const kept = pruning ? this.#known.filter((e) => e.generation >= this.#fromGeneration) : this.#known;
    return { entry, log: [...kept, entry].slice(-MAX_PENDING_ENTRIES) };
  }

  /** The entry for `note`, stamped with the chain as it will be after the write. */
  entry(note: HistoryNote, purpose: LeasePurpose | undefined, effect: WriteEffect): HistoryEntry {
    const set = effect.set ?? {};
    const hash = set.refreshHash ?? (effect.remove?.includes("refreshHash") ? undefined : this.#refreshHash);
    const { caller, door } = this.#context;
    return {
      atMs: this.#now(),
      generation: effect.generation,
      door,
      ...(purpose ? { purpose } : {}),
      outcome: note.outcome,
      ...(note.reason ? { reason: note.reason } : {}),
      ...(caller ? { caller } : {}),
      ...(hash ? { refreshHash: hash } : {}),
      status: set.status ?? this.#status,
      ...(note.peer ? { peer: note.peer } : {}),
    };
  }

  /** A write conditional on this holder's fence landed: what it recorded (see {@link recordFor}) and changed. */
  landed(recorded: Recorded | undefined, effect: WriteEffect, bumps: boolean): void {
    if (recorded) {
      this.#known = recorded.log;
      this.#seen.push(recorded.entry);
    }
    this.#track(effect);
    if (recorded && bumps) this.#reached = effect.generation;
  }

  /**
   * An appending write landed and returned the item (ALL_NEW): its list as stored, with `entry`
   * stamped with the generation the write really reached (a chain start lands on any generation).
   */
  learned(entry: HistoryEntry, stored: ChainRecord, bumps: boolean): void {
    this.#known = stamped(entry, stored);
    this.#seen.push(...this.#known);
    this.#status = stored.status;
    this.#refreshHash = stored.refreshHash;
    if (bumps) this.#reached = stored.generation;
  }

  /** An entry for another connection's item (a hand-over landing there), this lease's door and caller. */
  peerEntry(note: HistoryNote, after: { readonly generation: number; readonly refreshHash?: string }) {
    const { caller, door } = this.#context;
    return {
      atMs: this.#now(),
      generation: after.generation,
      door,
      outcome: note.outcome,
      ...(caller ? { caller } : {}),
      ...(after.refreshHash ? { refreshHash: after.refreshHash } : {}),
      status: ChainStatus.Active,
      ...(note.peer ? { peer: note.peer } : {}),
    } satisfies HistoryEntry;
  }

  /** Another connection's item, as the write that advanced it with `entry` returned it (ALL_NEW). */
  peerAdvanced(entry: HistoryEntry, stored: ChainRecord): void {
    if (stored.incarnation === undefined) return;
    this.#peers.push({
      connectionId: stored.connectionId,
      incarnation: stored.incarnation,
      generation: stored.generation,
      entries: stamped(entry, stored),
    });
  }

  /**
   * After the lease ended: one history item for this connection if the lease advanced its
   * generation (and one for each connection a hand-over advanced). Never throws: an entry that
   * is not written stays on the chain item, and the next commit writes it.
   * @returns how many items were written
   */
  async flush(): Promise<number> {
    if (this.#flushed) return 0;
    this.#flushed = true;
    const own: HistoryBatch[] =
      this.#reached === undefined
        ? []
        : [
            {
              connectionId: this.#connectionId,
              incarnation: this.#incarnation,
              generation: this.#reached,
              // Chronological, each fact once (mergeEntries sorts newest first).
              entries: mergeEntries([this.#seen]).reverse(),
            },
          ];
    let written = 0;
    for (const batch of [...own, ...this.#peers]) {
      try {
        if (await this.#store.write(batch, this.#context.keepDays)) written += 1;
      } catch {
        // Bookkeeping after the state it reports is stored (design invariant 13): the entries
        // are on the chain item, and the next lease that advances the chain writes them.
      }
    }
    return written;
  }

  #probeNote(purpose: LeasePurpose, set: Partial<ChainAttributes> = {}): HistoryNote | undefined {
    if (purpose !== LeasePurpose.Probe || !this.#tokenCall) return undefined;
    const alive = set.status !== undefined && HEALTHY.has(set.status);
    return { outcome: alive ? HistoryOutcome.ProbeAlive : HistoryOutcome.ProbeInconclusive };
  }

  #track(effect: WriteEffect): void {
    const set = effect.set ?? {};
    if (set.status !== undefined) this.#status = set.status;
    if (set.refreshHash !== undefined) this.#refreshHash = set.refreshHash;
    else if (effect.remove?.includes("refreshHash")) this.#refreshHash = undefined;
  }
}

/**
 * `parts` that also append `entry` to the item's `history` (a write without exact knowledge of
 * the list): `if_not_exists` gives an absent list its empty start, `list_append` adds at its end
 * (DynamoDB Developer Guide, "Using update expressions": SET, appending elements to a list).
 */
export function withEntry(parts: UpdateParts, entry: HistoryEntry): UpdateParts {
  return {
    ...parts,
    computed: [
      ...(parts.computed ?? []),
      "#history = list_append(if_not_exists(#history, :historyNone), :historyNew)",
    ],
    names: [...(parts.names ?? []), "history"],
    values: { ...parts.values, historyNone: [], historyNew: [entry] },
  };
}

/**
 * An item's `history` as an appending write returned it, with `entry` stamped with the generation
 * the write really reached (its condition did not pin the generation it was built on). Only the
 * last copy: a write repeated after a lost answer landed twice, each time a generation of its own.
 */
function stamped(entry: HistoryEntry, stored: ChainRecord): HistoryEntry[] {
  const list = [...(stored.history ?? [])];
  for (let i = list.length - 1; i >= 0; i -= 1) {
    const e = list[i];
    if (e && e.atMs === entry.atMs && e.outcome === entry.outcome && e.door === entry.door) {
      list[i] = { ...e, generation: stored.generation };
      break;
    }
  }
  return list;
}
