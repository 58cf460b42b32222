import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { ValidationError } from "../errors.js";
import {
  type ChainRecord,
  type ConnectionConfig,
  type InflightNote,
  type LeasePurpose,
  newConnectionItem,
  toRecord,
} from "./chain-record.js";
import { ChainTable, connectionKey, guardKey } from "./table-definition.js";
import { buildUpdate } from "./update-expression.js";

/** A lease this invocation holds. `previous` is the item as it was just before we took it. */
export interface Lease {
  readonly connectionId: string;
  readonly owner: string;
  readonly fence: number;
  readonly untilMs: number;
  readonly purpose: LeasePurpose;
  /** The generation the holder started from; every later write is conditional on it. */
  readonly generation: number;
  readonly previous: ChainRecord;
}

/** Why a lease could not be taken: someone holds it, or the generation moved on. */
export interface LeaseRefused {
  readonly refused: true;
  /** Present on real DynamoDB (ReturnValuesOnConditionCheckFailure); dynalite omits it. */
  readonly found?: ChainRecord;
}

/**
 * The encrypted tokens a commit stores. `access` is absent on a rotation-only answer;
 * `refresh` is absent for an implicit-mode chain, which never holds a refresh token.
 */
export interface StoredTokens {
  readonly refresh?: {
    readonly refreshCt: string;
    readonly refreshHash: string;
    readonly refreshIssuedAtMs: number;
  };
  readonly access?: {
    readonly accessCt: string;
    readonly accessIssuedAtMs: number;
    readonly accessExpiresAtMs: number;
    readonly windowOpensAtMs: number;
  };
}

/** Extra attributes a holder writes together with its commit or release. */
export interface Changes {
  readonly set?: Readonly<Record<string, unknown>>;
  readonly remove?: readonly string[];
}

export type CommitResult = "committed" | "committed_after_lease_lost" | "superseded";

const LEASE_ATTRS = ["leaseOwner", "leaseUntilMs", "leasePurpose", "inflight"] as const;

function isConditionFailure(error: unknown): error is ConditionalCheckFailedException {
  return error instanceof ConditionalCheckFailedException;
}

/**
 * All DynamoDB I/O of the engine. Every read a decision depends on is strongly consistent
 * (an eventually consistent read can return a refresh token Exact already rotated away).
 */
export class ChainStore {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;

  constructor(options: { readonly tableName: string; readonly client?: DynamoDBClient }) {
    this.#tableName = options.tableName;
    this.#client = options.client ?? new DynamoDBClient({});
  }

  get tableName(): string {
    return this.#tableName;
  }

  async get(connectionId: string): Promise<ChainRecord | undefined> {
    const out = await this.#client.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: marshall({ pk: connectionKey(connectionId) }),
        ConsistentRead: true,
      }),
    );
    return out.Item ? toRecord(out.Item) : undefined;
  }

  /** Adds a connection; refuses to overwrite one with the same ID. */
  async addConnection(config: ConnectionConfig, nowMs: number): Promise<ChainRecord> {
    const Item = newConnectionItem(config, nowMs);
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#tableName,
          Item,
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) {
        throw new ValidationError(`connection "${config.connectionId}" already exists; remove it first`, {
          cause: error,
        });
      }
      throw error;
    }
    return toRecord(Item);
  }

  /** Every connection, for the operator's `connection list` (a scan: never on a hot path). */
  async list(): Promise<ChainRecord[]> {
    const records: ChainRecord[] = [];
    let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.#client.send(
        new ScanCommand({
          TableName: this.#tableName,
          ConsistentRead: true,
          FilterExpression: "begins_with(pk, :conn)",
          ExpressionAttributeValues: marshall({ ":conn": "CONN#" }),
          ExclusiveStartKey,
        }),
      );
      for (const item of page.Items ?? []) records.push(toRecord(item));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return records.sort((a, b) => a.connectionId.localeCompare(b.connectionId));
  }

  /** Removes a connection and frees its guard, so the Exact user can be connected again. */
  async removeConnection(record: ChainRecord): Promise<void> {
    await this.#client.send(
      new DeleteItemCommand({
        TableName: this.#tableName,
        Key: marshall({ pk: connectionKey(record.connectionId) }),
      }),
    );
    if (record.exactUserId) await this.releaseGuard(record.clientId, record.exactUserId, record.connectionId);
  }

  /**
   * Claims the (client ID, Exact user) guard for a connection. Returns the connection that owns
   * the guard afterwards: ours, or the one that already held that chain.
   */
  async claimGuard(clientId: string, exactUserId: string, connectionId: string): Promise<string> {
    const Key = marshall({ pk: guardKey(clientId, exactUserId) });
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#tableName,
          Item: marshall({ pk: guardKey(clientId, exactUserId), connectionId, clientId, exactUserId }),
          ConditionExpression: "attribute_not_exists(pk) OR connectionId = :me",
          ExpressionAttributeValues: marshall({ ":me": connectionId }),
        }),
      );
      return connectionId;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const out = await this.#client.send(
        new GetItemCommand({ TableName: this.#tableName, Key, ConsistentRead: true }),
      );
      const owner = out.Item ? (unmarshall(out.Item).connectionId as string) : undefined;
      // The guard vanished between the two calls (its connection was removed): try once more.
      return owner ?? this.claimGuard(clientId, exactUserId, connectionId);
    }
  }

  async releaseGuard(clientId: string, exactUserId: string, connectionId: string): Promise<void> {
    try {
      await this.#client.send(
        new DeleteItemCommand({
          TableName: this.#tableName,
          Key: marshall({ pk: guardKey(clientId, exactUserId) }),
          ConditionExpression: "connectionId = :me",
          ExpressionAttributeValues: marshall({ ":me": connectionId }),
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  /*
   * The lease timeline. One conditional UpdateItem takes the lease AND writes the write-ahead
   * note; one conditional UpdateItem on the fence stores Exact's answer AND ends the lease.
   *
   *   holder A  ──acquire(fence=7, gen=41)──►  POST /token  ──answer──►  commit(fence=7, gen 41→42)
   *                  │ note {fence 7, gen 41}        │ aborted at leaseUntil − 2 s │ clears lease + note
   *                  ▼                               ▼                             ▼
   *   item      lease A until T ···························· T                 lease free, gen 42
   *
   *   waiters   read gen 41, lease live → sleep/re-read … gen 42 → take the new token (no lease)
   *
   *   stalled A (paused past T):  B acquires(fence=8, gen=41); A's commit fails on the fence,
   *   then retries on "generation = 41" only: if Exact rotated for A, A's tokens are the live
   *   chain and must land; if B already committed gen 42, A's tokens are dropped.
   *   died A (note left behind):  the next acquirer sees a stale note → chain SUSPECT → one probe.
   */
  /**
   * Takes the lease if it is free or expired and the generation is still `seenGeneration`.
   * Returns the lease with the item as it was before (ReturnValues ALL_OLD: it shows a stale
   * write-ahead note that ALL_NEW would have overwritten).
   */
  async acquireLease(args: {
    readonly connectionId: string;
    readonly owner: string;
    readonly purpose: LeasePurpose;
    readonly seenGeneration: number;
    readonly nowMs: number;
    readonly leaseMs: number;
  }): Promise<Lease | LeaseRefused> {
    const untilMs = args.nowMs + args.leaseMs;
    const leaseFree = "attribute_not_exists(#leaseUntilMs)";
    const leaseExpired = "#leaseUntilMs < :now";
    const sameGeneration = "#generation = :seen";
    const update = buildUpdate({
      set: {
        leaseOwner: args.owner,
        leaseUntilMs: untilMs,
        leasePurpose: args.purpose,
        inflight: {
          owner: args.owner,
          generation: args.seenGeneration,
          purpose: args.purpose,
          startedAtMs: args.nowMs,
        } satisfies InflightNote,
      },
      computed: ["#leaseFence = if_not_exists(#leaseFence, :zero) + :one"],
      condition: `attribute_exists(pk) AND (${leaseFree} OR ${leaseExpired}) AND ${sameGeneration}`,
      names: ["leaseUntilMs", "generation", "leaseFence"],
      values: { now: args.nowMs, seen: args.seenGeneration, zero: 0, one: 1 },
    });
    try {
      const out = await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#tableName,
          Key: marshall({ pk: connectionKey(args.connectionId) }),
          ...update,
          ReturnValues: "ALL_OLD",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      const previous = toRecord(out.Attributes ?? {});
      const fence = previous.leaseFence + 1;
      return {
        connectionId: args.connectionId,
        owner: args.owner,
        fence,
        untilMs,
        purpose: args.purpose,
        generation: args.seenGeneration,
        previous,
      };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return { refused: true, ...(error.Item ? { found: toRecord(error.Item) } : {}) };
    }
  }

  /**
   * Re-states a lease we hold with a new purpose and deadline (a refresh that turned into a
   * probe; a login, which takes longer than one token call), writing `changes` with it.
   */
  async renewLease(
    lease: Lease,
    args: { readonly purpose: LeasePurpose; readonly nowMs: number; readonly leaseMs: number },
    changes: Changes = {},
  ): Promise<Lease | undefined> {
    const untilMs = args.nowMs + args.leaseMs;
    const note: InflightNote = {
      owner: lease.owner,
      generation: lease.generation,
      purpose: args.purpose,
      startedAtMs: args.nowMs,
    };
    const ok = await this.#conditionalUpdate(lease.connectionId, {
      set: { ...changes.set, leasePurpose: args.purpose, leaseUntilMs: untilMs, inflight: note },
      remove: changes.remove,
      condition: "#leaseFence = :fence AND #generation = :seen",
      names: ["leaseFence", "generation"],
      values: { fence: lease.fence, seen: lease.generation },
    });
    return ok ? { ...lease, purpose: args.purpose, untilMs } : undefined;
  }

  /**
   * Stores what Exact returned and ends the lease, in one write conditional on our fence and
   * generation. If the fence moved (we stalled past the lease) the tokens may still be the only
   * live chain, so they land if the generation is still ours; otherwise a newer chain exists.
   */
  async commitTokens(lease: Lease, tokens: StoredTokens, changes: Changes = {}): Promise<CommitResult> {
    const set = { ...changes.set, ...tokens.refresh, ...tokens.access, generation: lease.generation + 1 };
    const remove = changes.remove ?? [];
    const committed = await this.#conditionalUpdate(lease.connectionId, {
      set,
      remove: [...LEASE_ATTRS, ...remove],
      condition: "#leaseFence = :fence AND #generation = :seen",
      names: ["leaseFence", "generation"],
      values: { fence: lease.fence, seen: lease.generation },
    });
    if (committed) return "committed";
    const rescued = await this.#conditionalUpdate(lease.connectionId, {
      set,
      remove,
      condition: "#generation = :seen",
      names: ["generation"],
      values: { seen: lease.generation },
    });
    return rescued ? "committed_after_lease_lost" : "superseded";
  }

  /** Ends our lease without new tokens, writing `changes` with it. False if we no longer hold it. */
  async releaseLease(lease: Lease, changes: Changes = {}): Promise<boolean> {
    return this.#conditionalUpdate(lease.connectionId, {
      set: changes.set,
      remove: [...LEASE_ATTRS, ...(changes.remove ?? [])],
      condition: "#leaseFence = :fence AND #generation = :seen",
      names: ["leaseFence", "generation"],
      values: { fence: lease.fence, seen: lease.generation },
    });
  }

  /** Writes `changes` if the chain is still at `generation` (no lease needed: no token call follows). */
  async updateAtGeneration(connectionId: string, generation: number, changes: Changes): Promise<boolean> {
    return this.#conditionalUpdate(connectionId, {
      ...changes,
      condition: "#generation = :seen",
      names: ["generation"],
      values: { seen: generation },
    });
  }

  /**
   * Onboarding's write: Exact has just started a new chain for this (client ID, user), so it
   * replaces whatever the item held, and bumps the generation so any holder of the old chain
   * fails its conditional writes.
   */
  async storeNewChain(
    connectionId: string,
    tokens: StoredTokens,
    set: Readonly<Record<string, unknown>>,
  ): Promise<number> {
    const update = buildUpdate({
      set: { ...set, ...tokens.access, ...tokens.refresh },
      remove: [...LEASE_ATTRS, "backoffUntilMs", "statusReason", "tokenErrors", "failureStreak"],
      computed: ["#generation = if_not_exists(#generation, :zero) + :one"],
      condition: "attribute_exists(pk)",
      names: ["generation"],
      values: { zero: 0, one: 1 },
    });
    const out = await this.#client.send(
      new UpdateItemCommand({
        TableName: this.#tableName,
        Key: marshall({ pk: connectionKey(connectionId) }),
        ...update,
        ReturnValues: "UPDATED_NEW",
      }),
    );
    return Number(unmarshall(out.Attributes ?? {}).generation);
  }

  /** Connection IDs whose proactive work is due at or before `untilMs` (sparse index, no scan). */
  async queryDue(untilMs: number): Promise<string[]> {
    const ids: string[] = [];
    let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.#client.send(
        new QueryCommand({
          TableName: this.#tableName,
          IndexName: ChainTable.dueIndex.name,
          KeyConditionExpression: "#shard = :shard AND #due <= :until",
          ExpressionAttributeNames: {
            "#shard": ChainTable.dueIndex.partitionKey,
            "#due": ChainTable.dueIndex.sortKey,
          },
          ExpressionAttributeValues: marshall({ ":shard": ChainTable.dueShardValue, ":until": untilMs }),
          ExclusiveStartKey,
        }),
      );
      for (const item of page.Items ?? []) ids.push(String(unmarshall(item).pk).slice("CONN#".length));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return ids;
  }

  async #conditionalUpdate(connectionId: string, parts: Parameters<typeof buildUpdate>[0]): Promise<boolean> {
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#tableName,
          Key: marshall({ pk: connectionKey(connectionId) }),
          ...buildUpdate(parts),
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}

export const isLeaseRefused = (result: Lease | LeaseRefused): result is LeaseRefused => "refused" in result;
