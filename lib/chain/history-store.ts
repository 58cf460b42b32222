import {
  type AttributeValue,
  BatchGetItemCommand,
  DynamoDBClient,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import type { ChainRecord } from "./chain-record.js";
import { isConditionFailure } from "./chain-table-client.js";
import { type HistoryEntry, mergeEntries } from "./history-entry.js";
import { ChainTable, historyKey } from "./table-definition.js";
import { buildUpdate } from "./update-expression.js";

/*
 * ─── A connection's audit history ───────────────────────────────────────────────────────────
 *
 * Without transactions an outcome and the history item that keeps it are two writes, so the
 * outcome's own write carries its entry: every write under a lease that records an outcome also
 * sets the chain item's `history` list (no extra call on the critical path, persist-first intact).
 * After a lease that advanced the generation has ended, ONE idempotent write (this file) copies
 * every entry its holder saw into the history item keyed by (connection, incarnation, the
 * generation it reached), conditional on `attribute_not_exists(pk)`:
 *
 *   lease A ─acquire─► … ─commit gen 42 (item.history += refreshed@42)─► end ─► HIST#c#i#42 {entries}
 *   lease B ─acquire─► … ─suspect (item.history += suspect@42)─► end                 (no bump: no write)
 *   lease C ─acquire─► … ─commit gen 43 (item.history = entries of gen ≥ 42 + refreshed@43)─► end ─► HIST#c#i#43
 *
 * A commit drops from the chain item only the entries of generations before the one its lease
 * started from: the previous committer copied those into its history item, and this one copies
 * them again. So each entry reaches two history items, and stays on the chain item until the
 * second of them is due. AT LEAST ONCE across a crash: a holder that dies between its commit and
 * its history write loses nothing, the next committer writes those entries; only two committing
 * holders in a row dying at that exact point lose entries. Repeats are harmless: the write is
 * idempotent per generation and readers merge entries (history-entry.ts mergeEntries), so each
 * fact shows once: effectively exactly once. Cost: at most one write per generation (a lease
 * that advanced one), none for a lease that did not, none for any vend that does not advance
 * the chain. Written with UpdateItem, an action every function already has on the table:
 * UpdateItem creates an item that does not exist (DynamoDB Developer Guide, "Using update
 * expressions"), and the condition makes a second write of the same generation a no-op.
 */

/** One history item: the entries one holder saw, up to the generation its lease reached. */
export interface HistoryBatch {
  readonly connectionId: string;
  readonly incarnation: string;
  readonly generation: number;
  readonly entries: readonly HistoryEntry[];
}

interface HistoryItem extends HistoryBatch {
  /** DynamoDB TTL (epoch seconds): HISTORY_DAYS after the write. */
  readonly expiresAtEpochSec: number;
}

/**
 * BatchGetItem's limit per request; it may return fewer and name the rest in UnprocessedKeys, to
 * be asked for again (DynamoDB API reference, BatchGetItem).
 */
const BATCH_GET_KEYS = 100;
const UNPROCESSED_RETRIES = 5;
const DAY_SECONDS = 86_400;

/** History items of the broker's table: the idempotent write and the operator's read. */
export class HistoryStore {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(options: {
    readonly tableName: string;
    readonly client?: DynamoDBClient;
    /** @default Date.now */
    readonly now?: () => number;
    /** Pauses before asking again for keys DynamoDB left unprocessed. @default setTimeout */
    readonly sleep?: (ms: number) => Promise<void>;
  }) {
    this.#tableName = options.tableName;
    this.#client = options.client ?? new DynamoDBClient({});
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /**
   * Writes `batch` as the history item of its generation, kept `keepDays` days (TTL). A repeat,
   * or a second holder's batch for the same generation, changes nothing.
   * @returns false when the item already existed
   * @throws the SDK's error when DynamoDB fails (the entries stay on the chain item: the next commit writes them)
   */
  async write(batch: HistoryBatch, keepDays: number): Promise<boolean> {
    const item: HistoryItem = {
      ...batch,
      expiresAtEpochSec: Math.floor(this.#now() / 1000) + keepDays * DAY_SECONDS,
    };
    const { connectionId, incarnation, generation, entries, expiresAtEpochSec } = item;
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#tableName,
          Key: marshall({ [ChainTable.partitionKey]: historyKey(connectionId, incarnation, generation) }),
          ...buildUpdate({
            set: {
              connectionId,
              incarnation,
              generation,
              entries,
              [ChainTable.ttlAttribute]: expiresAtEpochSec,
            },
            condition: `attribute_not_exists(${ChainTable.partitionKey})`,
          }),
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /**
   * The connection's history, newest first, at most `limit` entries: its history items (its
   * current incarnation's, not yet expired), walked down from the current generation, merged
   * with the entries its item still carries. Reads only: BatchGetItem, strongly consistent.
   */
  async read(record: ChainRecord, limit: number): Promise<HistoryEntry[]> {
    const batches: Array<{ generation: number; entries: readonly HistoryEntry[] }> = [];
    const incarnation = record.incarnation;
    const nowSec = Math.floor(this.#now() / 1000);
    let entries = 0;
    for (let top = record.generation; incarnation !== undefined && top >= 1 && entries < limit; ) {
      const low = Math.max(1, top - BATCH_GET_KEYS + 1);
      const items = (await this.#batchGet(record.connectionId, incarnation, low, top)).filter(
        (item) => item.expiresAtEpochSec > nowSec,
      );
      // A page with no live item: older ones expired too (TTL follows time, time follows generation).
      if (items.length === 0) break;
      for (const item of items) {
        batches.push(item);
        entries += item.entries.length;
      }
      top = low - 1;
    }
    batches.sort((a, b) => a.generation - b.generation);
    return mergeEntries([...batches.map((batch) => batch.entries), record.history ?? []]).slice(0, limit);
  }

  async #batchGet(
    connectionId: string,
    incarnation: string,
    low: number,
    top: number,
  ): Promise<HistoryItem[]> {
    let keys: Array<Record<string, AttributeValue>> = [];
    for (let generation = top; generation >= low; generation -= 1)
      keys.push(marshall({ [ChainTable.partitionKey]: historyKey(connectionId, incarnation, generation) }));
    const found: HistoryItem[] = [];
    for (let attempt = 0; keys.length > 0; attempt += 1) {
      if (attempt > UNPROCESSED_RETRIES) throw new Error("DynamoDB left history keys unprocessed; try again");
      if (attempt > 0) await this.#sleep(50 * 2 ** attempt);
      const out = await this.#client.send(
        new BatchGetItemCommand({
          RequestItems: { [this.#tableName]: { Keys: keys, ConsistentRead: true } },
        }),
      );
      for (const raw of out.Responses?.[this.#tableName] ?? []) found.push(unmarshall(raw) as HistoryItem);
      keys = out.UnprocessedKeys?.[this.#tableName]?.Keys ?? [];
    }
    return found;
  }
}
