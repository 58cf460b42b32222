import { EventReason } from "../events/broker-events.js";
import {
  CHAIN_STARTING_PURPOSES,
  type ChainAttributes,
  type ChainRecord,
  ChainStatus,
  DivisionPinnedBy,
} from "./chain-record.js";
import type { LeaseWriter } from "./chain-table-client.js";
import type { HistoryEntry } from "./history-entry.js";
import { withEntry } from "./history-log.js";
import { dueIndexFields } from "./refresh-dispatch.js";
import { ChainTable } from "./table-definition.js";
import { CLOCK_SKEW_BOUND_MS } from "./timing.js";
import type { SealedTokens } from "./token-seal.js";
import type { UpdateParts } from "./update-expression.js";

/** The identity `/current/Me` showed for a chain. */
export interface ChainIdentity {
  readonly exactUserId: string;
  readonly exactUserName: string;
  readonly division: number | null;
}

/**
 * The few writes made without the chain's lease. None follows a token call of this invocation
 * except {@link adoptChain}, the accepted exception; each is conditional on the generation (or
 * the refresh hash) it was decided on and on the connection's incarnation, so it never lands on
 * a newer chain or on a re-added connection. One that moves a due time it decided on a read
 * ({@link markHot}, {@link cool}) is also conditional on what a lease holder may have decided
 * since without a new generation (a status, a due time), so it never undoes that decision.
 */
export class UnleasedWrites {
  readonly #writer: LeaseWriter;
  readonly #now: () => number;

  constructor(writer: LeaseWriter, now: () => number) {
    this.#writer = writer;
    this.#now = now;
  }

  /**
   * A vend served the chain: it is hot, due at its window if `dueAtMs` (vend-answers.ts decides when).
   * Moving the due time is also conditional on the status and due time the vend read: a lease
   * holder that decided otherwise meanwhile at the same generation (BROKEN, due now, by a vend that
   * met "Old refresh token used"; a backoff) keeps its decision, and this vend's mark is dropped
   * (the next vend makes it). No condition on the lease: a holder's later write decides anyway, and
   * a vend served during a refresh must still record itself.
   * @returns false when a condition failed (the chain moved meanwhile)
   */
  async markHot(record: ChainRecord, dueAtMs: number | undefined): Promise<boolean> {
    const nowMs = this.#now();
    if (dueAtMs === undefined) return this.#atGeneration(record, { lastVendAtMs: nowMs });
    return this.#atGeneration(
      record,
      { lastVendAtMs: nowMs, ...dueIndexFields(dueAtMs, nowMs) },
      [],
      unchangedSince(record, ["status", "dueAtMs"]),
    );
  }

  /**
   * The refresh dispatcher found this chain overdue and queued its work again (refresh-dispatch.ts):
   * it is due again at `redispatchAtMs`, so a lost message or a worker that dies is found again,
   * unless the work moves it first. Conditional on the due time the chain was found with, so of two dispatchers
   * only one claims it, and a chain whose due time moved meanwhile is not claimed.
   * @returns false when the condition failed (claimed elsewhere, moved, or gone)
   */
  async claimDue(connectionId: string, foundDueAtMs: number, redispatchAtMs: number): Promise<boolean> {
    const written = await this.#writer(connectionId, {
      // Into the main partition (from catch-up too): a tick's slice or the overdue sweep finds it again.
      set: { dueShard: ChainTable.dueShardValue, dueAtMs: redispatchAtMs },
      condition: "attribute_exists(pk) AND #dueAtMs = :found",
      names: ["dueAtMs"],
      values: { found: foundDueAtMs },
    });
    return written !== undefined;
  }

  /**
   * An idle chain: due again at `dueAtMs`, or out of the index (an idle implicit chain). Decided on
   * `record` without a lease, so it lands only if nothing else decided about the chain since: the
   * generation, the status (and when it was set), the last vend (a vend's {@link markHot}) and the
   * lease fence (any lease taken since, whatever its holder wrote: BROKEN due now after "Old refresh
   * token used" leaves the generation alone) are as read, and no lease is live. Not the due time
   * itself: for a claimed chain the worker's record carries the claim's found due time, not the
   * stored re-dispatch time (due-chain-work.ts withDispatchedDueAt); every writer that moves a due
   * time at the same generation is caught by the fence, the status or the last vend, except a
   * dispatcher's claim, which cooling may overwrite.
   * @returns false when a condition failed: someone else moved the chain, which is theirs to look after
   */
  async cool(record: ChainRecord, dueAtMs: number | undefined): Promise<boolean> {
    const nowMs = this.#now();
    const guard = joinGuards(
      unchangedSince(record, ["status", "statusChangedAtMs", "lastVendAtMs", "leaseFence"]),
      {
        // No live lease (as ChainStore.acquire judges one free).
        condition: "(attribute_not_exists(#leaseUntilMs) OR #leaseUntilMs < :expiredBefore)",
        names: ["leaseUntilMs"],
        values: { expiredBefore: nowMs - CLOCK_SKEW_BOUND_MS },
      },
    );
    return dueAtMs === undefined
      ? this.#atGeneration(record, {}, ["dueShard", "dueAtMs"], guard)
      : this.#atGeneration(record, dueIndexFields(dueAtMs, nowMs), [], guard);
  }

  /** `exact-broker heal`: the operator fixed the cause; forget the failures that stopped the chain. */
  async resetForOperator(record: ChainRecord): Promise<boolean> {
    return this.#atGeneration(
      record,
      { status: ChainStatus.Broken, statusReason: EventReason.Operator, statusChangedAtMs: this.#now() },
      ["loginFailures", "lastLoginFailure", "backoffUntilMs", "backoffReason", "failureStreak"],
    );
  }

  /**
   * `connection set-division`: `division` becomes the pinned division (the one vends answer),
   * chosen by the operator. It changes no token, so it takes no lease; it is conditional on the
   * incarnation, on the Exact user whose chain the caller checked the division with, and on no
   * identity check being under way (a live chain-starting lease: its verified write would set
   * the division it read before). A connection stopped at `division_unreachable` goes back to
   * VERIFYING with its stored chain, due now: the next lease checks it against the new
   * division, with no login.
   * @returns false when the condition failed; re-read to tell why
   */
  async pinDivision(record: ChainRecord, division: number): Promise<boolean> {
    if (record.incarnation === undefined) return false;
    const nowMs = this.#now();
    const recover =
      record.status === ChainStatus.ReauthRequired &&
      record.statusReason === EventReason.DivisionUnreachable &&
      record.verification !== undefined;
    const user = record.exactUserId;
    const written = await this.#writer(record.connectionId, {
      set: {
        pinnedDivision: division,
        division,
        divisionPinnedBy: DivisionPinnedBy.Operator,
        ...(recover
          ? {
              status: ChainStatus.Verifying,
              statusChangedAtMs: nowMs,
              ...dueIndexFields(nowMs, nowMs),
            }
          : {}),
      },
      remove: recover ? ["statusReason"] : [],
      condition:
        "attribute_exists(pk) AND #incarnation = :inc AND " +
        (user === undefined ? "attribute_not_exists(#exactUserId)" : "#exactUserId = :user") +
        " AND (attribute_not_exists(#leaseUntilMs) OR #leaseUntilMs < :expiredBefore OR " +
        `NOT (#leasePurpose IN (${CHAIN_STARTING_PURPOSES.map((_, i) => `:p${i}`).join(", ")})))` +
        (recover ? " AND #status = :reauth AND #statusReason = :why AND #generation = :gen" : ""),
      names: [
        "incarnation",
        "exactUserId",
        "leaseUntilMs",
        "leasePurpose",
        ...(recover ? (["status", "statusReason", "generation"] as const) : []),
      ],
      values: {
        inc: record.incarnation,
        ...(user === undefined ? {} : { user }),
        expiredBefore: nowMs - CLOCK_SKEW_BOUND_MS,
        ...Object.fromEntries(CHAIN_STARTING_PURPOSES.map((purpose, i) => [`p${i}`, purpose])),
        ...(recover
          ? {
              reauth: ChainStatus.ReauthRequired,
              why: EventReason.DivisionUnreachable,
              gen: record.generation,
            }
          : {}),
      },
    });
    return written !== undefined;
  }

  /**
   * Gives an item written before incarnations existed its incarnation, with its tokens re-sealed
   * for it (their old context has none). Only while no lease is live and the chain has not moved.
   */
  async adoptIncarnation(
    record: ChainRecord,
    incarnation: string,
    resealed: Partial<ChainAttributes>,
  ): Promise<boolean> {
    const written = await this.#writer(record.connectionId, {
      set: { ...resealed, incarnation },
      condition:
        "attribute_exists(pk) AND attribute_not_exists(#incarnation) AND #generation = :gen AND " +
        "(attribute_not_exists(#leaseUntilMs) OR #leaseUntilMs < :expiredBefore)",
      names: ["incarnation", "generation", "leaseUntilMs"],
      values: { gen: record.generation, expiredBefore: this.#now() - CLOCK_SKEW_BOUND_MS },
    });
    return written !== undefined;
  }

  /**
   * The accepted exception to one-lease-per-chain: a code exchange for another connection
   * started a new chain of `target`'s Exact user, and Exact ended the chain `target` held. The
   * chain lands on `target` as its next generation (any holder of the dead chain fails its
   * fence-and-generation writes; its write-ahead note, about the dead chain, goes). Only if
   * `target` still holds that user of that app, is not verifying a chain of its own, and holds
   * no chain that started later (that one is live; ours died when it started), and still has the
   * pinned division it was read with (`identity.division` keeps it). Idempotent: a repeat after
   * a crash finds `adoptedHash`. `entry` (`received`) is appended to `target`'s history.
   * @returns `target`'s item as written; undefined when it did not land (re-read `target` to tell why)
   */
  async adoptChain(
    target: ChainRecord,
    tokens: SealedTokens,
    identity: ChainIdentity,
    chainStartedAtMs: number,
    dueAtMs: number,
    entry: HistoryEntry,
  ): Promise<ChainRecord | undefined> {
    const hash = tokens.refresh?.refreshHash;
    if (target.incarnation === undefined || hash === undefined) return undefined;
    const nowMs = this.#now();
    const pinned = target.pinnedDivision;
    const adopt: UpdateParts = {
      set: {
        ...tokens.refresh,
        ...tokens.access,
        ...identity,
        chainStartedAtMs,
        adoptedHash: hash,
        status: ChainStatus.Active,
        statusChangedAtMs: nowMs,
        ...dueIndexFields(dueAtMs, nowMs),
        failureStreak: 0,
      },
      remove: ["statusReason", "backoffUntilMs", "backoffReason", "inflight"],
      computed: ["#generation = #generation + :one"],
      condition:
        "attribute_exists(pk) AND #incarnation = :inc AND #clientId = :client AND #exactUserId = :user AND " +
        "attribute_not_exists(#verification) AND " +
        "(attribute_not_exists(#chainStartedAtMs) OR #chainStartedAtMs < :started) AND " +
        "(attribute_not_exists(#adoptedHash) OR #adoptedHash <> :hash) AND " +
        "(attribute_not_exists(#refreshHash) OR #refreshHash <> :hash) AND " +
        (pinned === undefined ? "attribute_not_exists(#pinnedDivision)" : "#pinnedDivision = :pinned"),
      names: [
        "pinnedDivision",
        "incarnation",
        "clientId",
        "exactUserId",
        "verification",
        "chainStartedAtMs",
        "adoptedHash",
        "refreshHash",
        "generation",
      ],
      values: {
        inc: target.incarnation,
        client: target.clientId,
        user: identity.exactUserId,
        started: chainStartedAtMs,
        hash,
        one: 1,
        ...(pinned === undefined ? {} : { pinned }),
      },
    };
    // No lease of `target`'s: its history is appended to, never replaced (history-log.ts).
    return this.#writer(target.connectionId, withEntry(adopt, entry), "ALL_NEW");
  }

  async #atGeneration(
    record: ChainRecord,
    set: Partial<ChainAttributes>,
    remove: ReadonlyArray<keyof ChainRecord> = [],
    guard?: Guard,
  ): Promise<boolean> {
    const legacy = record.incarnation === undefined;
    const written = await this.#writer(record.connectionId, {
      set,
      remove,
      condition:
        `#generation = :gen AND ${legacy ? "attribute_not_exists(#incarnation)" : "#incarnation = :inc"}` +
        (guard ? ` AND ${guard.condition}` : ""),
      names: ["generation", "incarnation", ...(guard?.names ?? [])],
      values: { gen: record.generation, ...(legacy ? {} : { inc: record.incarnation }), ...guard?.values },
    });
    return written !== undefined;
  }
}

/** A condition clause with its placeholders (UpdateParts' condition, names, values). */
interface Guard {
  readonly condition: string;
  readonly names: readonly string[];
  readonly values: Readonly<Record<string, unknown>>;
}

/** The attributes an unleased write can require to be as its caller read them. */
type SeenAttribute = "status" | "statusChangedAtMs" | "dueAtMs" | "lastVendAtMs" | "leaseFence";

/**
 * Each of `attrs` still as `record` had it: equal, or still absent when the read had none. A
 * fence of 0 is also an item that never had a lease (chain-item.ts reads a missing fence as 0).
 */
function unchangedSince(record: ChainRecord, attrs: readonly SeenAttribute[]): Guard {
  const clauses: string[] = [];
  const values: Record<string, unknown> = {};
  for (const attr of attrs) {
    const seen = record[attr];
    if (seen === undefined) {
      clauses.push(`attribute_not_exists(#${attr})`);
      continue;
    }
    values[`seen_${attr}`] = seen;
    clauses.push(
      attr === "leaseFence" && seen === 0
        ? `(attribute_not_exists(#${attr}) OR #${attr} = :seen_${attr})`
        : `#${attr} = :seen_${attr}`,
    );
  }
  return { condition: clauses.join(" AND "), names: attrs, values };
}

function joinGuards(a: Guard, b: Guard): Guard {
  return {
    condition: `${a.condition} AND ${b.condition}`,
    names: [...a.names, ...b.names],
    values: { ...a.values, ...b.values },
  };
}
