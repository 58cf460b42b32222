import { type AttributeValue, QueryCommand } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import type { ChainRecord, InflightNote, LeasePurpose } from "./chain-record.js";
import type { LeaseWriter } from "./chain-table-client.js";
import { ConnectionRegistry } from "./connection-registry.js";
import { DispatchCursor } from "./dispatch-cursor.js";
import type { HistoryContext } from "./history-entry.js";
import { SessionHistory } from "./history-log.js";
import { HistoryStore } from "./history-store.js";
import { LeaseSession } from "./lease-session.js";
import { ChainTable } from "./table-definition.js";
import { CLOCK_SKEW_BOUND_MS } from "./timing.js";
import { UnleasedWrites } from "./unleased-writes.js";

/*
 * ─── The chain's status machine ──────────────────────────────────────────────────────────────
 *
 *   NEW ──seed / connect: code exchanged, stored──► VERIFYING ──/current/Me: this connection's──► ACTIVE
 *    │  (implicit mode: its first login)              │    ▲  └─ Me: another connection's user: the chain is
 *    └────────────────────────────────────────────────┘    │     handed to it (chain-handover.ts); this one goes
 *   any status ──seed / connect (a new consent)────────────┘     back where it was, its own live chain restored
 *                                                                 (a login of the wrong user: REAUTH_REQUIRED)
 *   VERIFYING: never served. Me fails or refuses: stays, backs off, a later lease checks again with the
 *   stored token; its token expired: it is refreshed first (stays VERIFYING; old token → BROKEN); an
 *   implicit login's token expired unchecked: dropped, the next login replaces it (a blocked user's
 *   re-check: back to BLOCKED, re-checked again in 6 h).
 *   NEW (any status: --replace) ──import: another system's refresh token, refreshed once──► as a seed;
 *     its answer lost: that token stored SUSPECT, its check pending: one probe, then VERIFYING (dead:
 *     back where it was; chain-import.ts)
 *
 *   ACTIVE ──refresh: no answer, 500/502/504──► SUSPECT ──probe: alive (tokens, too early)──► ACTIVE
 *                                                  ├──probe: old token / no answer at all──► BROKEN (lost_answer)
 *                                                  └──probe: 5xx (a new unknown outcome)──► SUSPECT, probed again:
 *                                                     502/504 at the app's outage pace, any other 5xx spends the
 *                                                     chain's error budget (8 probes an hour at most)
 *   any answer carrying a refresh token (a refusal, a 5xx, a 2xx without an access token) ──► stored first,
 *     the chain advances (a success without an access token: none served until the next refresh, 570 s on)
 *   ACTIVE ──old token, expired, invalid_grant, undecryptable──► BROKEN
 *   BROKEN ──heal takes the lease──► HEALING ──login + code exchange, stored──► VERIFYING ──► ACTIVE
 *                                       ├──login failed, may pass (budget 3/h per chain and per user)──► BROKEN
 *                                       ├──no login: the chain's token-error budget spent, or the app held
 *                                       │  (outage, rejection, API scopes; code-exchange.ts)──► BROKEN, backoff
 *                                       └──bad password, locked, bad TOTP twice, no credentials──► REAUTH_REQUIRED
 *   VERIFYING / ACTIVE ──Me: 403 Reason BlockedUser, InactiveUser, LicenseExpired, NoDivisionAccess──►
 *     BLOCKED: no login; refreshes go on; Me again every 30 min ──Exact accepts the user──► ACTIVE
 *   ACTIVE / SUSPECT / VERIFYING ──token endpoint: 403 with such a Reason──► BLOCKED, the same (a Me check
 *     pending: source recheck; its re-check refreshes first, then Me; a SUSPECT chain's probe stays due)
 *     BLOCKED stays BLOCKED through a refresh's lost answer or 5xx (one probe: unknownOutcomeAtMs) and
 *     when its chain dies (old token, expired, invalid_grant: no heal, no ChainBroken). Without a chain
 *     (that, or implicit mode) the re-check is a login every 6 h, still shown BLOCKED ──Me refuses the
 *     same reason──► BLOCKED (no new event) / ──Exact accepts the user──► ACTIVE
 *   VERIFYING ──Me: the user cannot open the pinned division──► REAUTH_REQUIRED (division_unreachable)
 *     (the division's API budget spent, 429: reachable for now ──► ACTIVE; division-check.ts)
 *   ACTIVE ──3+ odd answers (a bare 4xx page, an unknown error) while the app's other chains refresh,
 *     or a run of them older than 6 h (token-refusals.ts)──► SUSPECT ──probe: the same──► BROKEN (invalid_chain)
 *   any status: invalid_client, Application Scope Violated, an outage (503, 429, a bare 4xx page;
 *     502/504 too, the chain that got one SUSPECT besides),
 *     the day's 200th token call: the status stays; the chain is held (backoff) by its app's state
 *     (app-states.ts: one chain of the app asks Exact for all; a rejection holds only the chains
 *     holding the rejected secret) or by its own count until midnight
 *   any status ──operator: exact-broker heal──► BROKEN → heal
 *   any status ──another connection's code exchange started this user's chain──► ACTIVE (the hand-over lands)
 *
 * ─── The lease's life ─────────────────────────────────────────────────────────────────────────
 *
 *   holder A ─acquire(fence 7, gen 41)─► prepare keys ─► POST /token ─answer─► persist(fence 7, gen 41→42)
 *                │ write-ahead note                      │ started only if it     │ one write: tokens in,
 *                │ {owner A, gen 41, purpose}             │ can end before A stops │ lease and note out
 *                ▼                                       ▼                        ▼
 *   item     lease A until T ··················· T−skew ···· T ···· T+skew ······························
 *                                              A starts       others may take the lease only from here
 *                                              nothing new    (skew = CLOCK_SKEW_BOUND_MS; a process whose
 *                                                             clock may be off by more takes no lease)
 *   waiters  read gen 41, lease live → sleep, re-read … gen 42 → serve the new token (no lease needed)
 *
 *   A chain start (login, code exchange) persists Exact's answer as VERIFYING and KEEPS the lease
 *   for the /current/Me check; the write after the check ends it. Every session ends in a
 *   `finally`, whatever happened (LeaseSession.end). Each write that decides an outcome carries
 *   its history entry; a session that advanced the generation writes one history item after its
 *   lease has ended (history-store.ts).
 *   A stalled A (paused past T+skew): B acquires (fence 8, gen 41). A's persist fails on the fence,
 *   then lands on "gen 41, no chain-starting lease, not HEALING" only: if Exact rotated for A and
 *   nobody logged in since, A's tokens are the live chain; otherwise they are dropped, and a
 *   login's new chain always wins.
 *   A died (note left behind): the next acquirer sees a stale note → SUSPECT → one probe.
 */

/** What a session holder started from; `record` is the item as it was just before the lease (ALL_OLD). */
/** A chain found due in the sparse index: its connection and the due time the index held. */
export interface DueChain {
  readonly connectionId: string;
  /** Epoch ms. */
  readonly dueAtMs: number;
}

export interface AcquireArgs {
  readonly record: ChainRecord;
  readonly owner: string;
  readonly purpose: LeasePurpose;
  readonly leaseMs: number;
  /** Epoch ms by the injected clock: the Lambda invocation's deadline. No work starts that cannot end before it. */
  readonly deadlineMs?: number;
  /**
   * The door and caller the lease's history entries name, and how long they are kept. Every door
   * passes one; without it (a test, a tool) the door is the one the purpose implies.
   */
  readonly history?: HistoryContext;
}

/** Returned by {@link ChainStore.withLease} when the lease is held by someone else or the chain moved on. */
export const LeaseRefused = Symbol("LeaseRefused");

/**
 * The lease module: every DynamoDB I/O of the engine (with ConnectionRegistry and
 * ChainTableClient below it), and the one way to take a chain's lease.
 */
export class ChainStore extends ConnectionRegistry {
  /**
   * Takes the chain's lease if it is free, or expired by more than the skew bound, and the
   * chain is still at `record`'s generation and incarnation: one UpdateItem that also writes the
   * write-ahead note and returns the item as it was (ALL_OLD shows a stale note that ALL_NEW
   * would have overwritten). Refuses (undefined) otherwise.
   * @throws ClockSkewed when this process's clock may be off from DynamoDB's by more than the bound.
   */
  async acquire(args: AcquireArgs): Promise<LeaseSession | undefined> {
    const { record } = args;
    if (record.incarnation === undefined) {
      throw new Error(`connection "${record.connectionId}" has no incarnation yet; adopt one before leasing`);
    }
    if (!this.skew.measured) await this.get(record.connectionId);
    this.skew.assertWithinBound();
    const nowMs = this.now();
    const untilMs = nowMs + args.leaseMs;
    const note: InflightNote = {
      owner: args.owner,
      generation: record.generation,
      purpose: args.purpose,
      startedAtMs: nowMs,
    };
    const leaseFree = "attribute_not_exists(#leaseUntilMs)";
    const leaseExpired = "#leaseUntilMs < :expiredBefore";
    const previous = await this.update(
      record.connectionId,
      {
        set: { leaseOwner: args.owner, leaseUntilMs: untilMs, leasePurpose: args.purpose, inflight: note },
        computed: ["#leaseFence = if_not_exists(#leaseFence, :zero) + :one"],
        condition: `attribute_exists(pk) AND #incarnation = :inc AND (${leaseFree} OR ${leaseExpired}) AND #generation = :seen`,
        names: ["leaseUntilMs", "generation", "leaseFence", "incarnation"],
        values: {
          expiredBefore: nowMs - CLOCK_SKEW_BOUND_MS,
          seen: record.generation,
          inc: record.incarnation,
          zero: 0,
          one: 1,
        },
      },
      "ALL_OLD",
    );
    if (!previous) return undefined;
    const history = new SessionHistory({
      store: this.history,
      ...(args.history ? { context: args.history } : {}),
      purpose: args.purpose,
      record: previous,
      incarnation: record.incarnation,
      now: this.now,
    });
    return new LeaseSession({
      history,
      writer: this.#writer,
      now: this.now,
      record: previous,
      owner: args.owner,
      fence: previous.leaseFence + 1,
      untilMs,
      sleep: this.sleep,
      purpose: args.purpose,
      incarnation: record.incarnation,
      ...(args.deadlineMs !== undefined ? { deadlineMs: args.deadlineMs } : {}),
    });
  }

  /** Runs `work` under the chain's lease and ends the lease afterwards on every path. */
  async withLease<T>(
    args: AcquireArgs,
    work: (session: LeaseSession) => Promise<T>,
  ): Promise<T | typeof LeaseRefused> {
    const session = await this.acquire(args);
    if (!session) return LeaseRefused;
    try {
      return await work(session);
    } finally {
      await session.end();
    }
  }

  /** True while someone holds the lease, judged against the skew bound (a lease is live until T + skew). */
  leaseIsLive(record: ChainRecord, nowMs: number = this.now()): boolean {
    return record.leaseOwner !== undefined && (record.leaseUntilMs ?? 0) + CLOCK_SKEW_BOUND_MS > nowMs;
  }

  /** Connection IDs whose proactive work is due at or before `untilMs` (sparse index, no scan). */
  async queryDue(untilMs: number, limit?: number): Promise<string[]> {
    const [due, catchUp] = await Promise.all([
      this.queryDueChains(untilMs, limit),
      this.queryDueChains(untilMs, limit, undefined, ChainTable.catchUpShardValue),
    ]);
    const earliestFirst = [...due, ...catchUp].sort((a, b) => a.dueAtMs - b.dueAtMs);
    return earliestFirst.slice(0, limit).map((chain) => chain.connectionId);
  }

  /**
   * Chains of one partition of the due index (`shard`, by default the main one) whose proactive
   * work is due at or before `untilMs` (and after `afterMs`, if given), earliest first, with the due time the index holds (it is eventually consistent: a claim
   * conditions on it). One Query per page of the keys-only index (about 1 MB, thousands of
   * keys): reads proportional to the chains due.
   */
  async queryDueChains(
    untilMs: number,
    limit?: number,
    afterMs?: number,
    shard: string = ChainTable.dueShardValue,
  ): Promise<DueChain[]> {
    const due: DueChain[] = [];
    let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        this.watch(
          new QueryCommand({
            TableName: this.tableName,
            IndexName: ChainTable.dueIndex.name,
            // A sort key condition has one comparison or BETWEEN (inclusive): after `afterMs` is from afterMs + 1.
            KeyConditionExpression:
              afterMs === undefined
                ? "#shard = :shard AND #due <= :until"
                : "#shard = :shard AND #due BETWEEN :from AND :until",
            ExpressionAttributeNames: {
              "#shard": ChainTable.dueIndex.partitionKey,
              "#due": ChainTable.dueIndex.sortKey,
            },
            ExpressionAttributeValues: marshall({
              ":shard": shard,
              ":until": untilMs,
              ...(afterMs === undefined ? {} : { ":from": afterMs + 1 }),
            }),
            ExclusiveStartKey,
            ...(limit !== undefined ? { Limit: limit - due.length } : {}),
          }),
        ),
      );
      for (const item of page.Items ?? []) {
        const { pk, dueAtMs } = unmarshall(item) as { pk: string; dueAtMs: number };
        due.push({ connectionId: pk.slice("CONN#".length), dueAtMs });
      }
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey && (limit === undefined || due.length < limit));
    return due;
  }

  /** Writes outside a lease that no token call depends on (hotness, cooling, an operator's reset, upgrades). */
  get unleased(): UnleasedWrites {
    return new UnleasedWrites(this.#writer, this.now);
  }

  /** How far the refresh dispatcher has queued the due index (dispatch-cursor.ts). */
  get dispatchCursor(): DispatchCursor {
    return new DispatchCursor(this.client, this.tableName);
  }

  /** The connections' history items (history-store.ts): written after a lease that advanced a chain. */
  get history(): HistoryStore {
    return new HistoryStore({
      tableName: this.tableName,
      client: this.client,
      now: this.now,
      sleep: this.sleep,
    });
  }

  readonly #writer: LeaseWriter = (connectionId, parts, returnValues) =>
    this.update(connectionId, parts, returnValues);
}
