import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { toRecord, toStoredAttributes } from "./chain-item.js";
import type { ChainRecord } from "./chain-record.js";
import { ClockSkewMonitor } from "./clock-skew.js";
import { connectionKey } from "./table-definition.js";
import { type BuiltUpdate, buildUpdate, type UpdateParts } from "./update-expression.js";

/** One conditional UpdateItem on a connection's item; undefined when its condition failed. */
export type LeaseWriter = (
  connectionId: string,
  parts: UpdateParts,
  returnValues?: "ALL_OLD" | "ALL_NEW" | "NONE",
) => Promise<ChainRecord | undefined>;

/**
 * Runs a write that records an outcome, trying again after an error (the SDK has already retried
 * throttling) while `leftMs()` allows: the write's condition (fence, generation, incarnation)
 * makes a repeat harmless. Pauses 100 ms, 200 ms, … Throws the last error when time runs out.
 */
export async function retryWithin<T>(
  write: () => Promise<T>,
  leftMs: () => number,
  sleep: (ms: number) => Promise<void>,
): Promise<T> {
  for (let pauseMs = 100; ; pauseMs *= 2) {
    try {
      return await write();
    } catch (error) {
      if (leftMs() <= pauseMs) throw error;
      await sleep(pauseMs);
    }
  }
}

export function isConditionFailure(error: unknown): error is ConditionalCheckFailedException {
  return error instanceof ConditionalCheckFailedException;
}

/**
 * The broker's table as the engine reads and writes it: strongly consistent reads (an eventually
 * consistent read can return a refresh token Exact already rotated away), conditional updates,
 * and every response's `Date` header measuring this process's clock against DynamoDB's.
 */
export class ChainTableClient {
  protected readonly client: DynamoDBClient;
  protected readonly now: () => number;
  protected readonly sleep: (ms: number) => Promise<void>;
  protected readonly skew: ClockSkewMonitor;
  readonly tableName: string;

  constructor(options: {
    readonly tableName: string;
    readonly client?: DynamoDBClient;
    /** @default Date.now */
    readonly now?: () => number;
    /** Pauses between attempts of a persisting write. @default setTimeout */
    readonly sleep?: (ms: number) => Promise<void>;
  }) {
    this.tableName = options.tableName;
    this.client = options.client ?? new DynamoDBClient({});
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.skew = new ClockSkewMonitor({ now: this.now });
  }

  async get(connectionId: string): Promise<ChainRecord | undefined> {
    const out = await this.client.send(
      this.watch(
        new GetItemCommand({
          TableName: this.tableName,
          Key: marshall({ pk: connectionKey(connectionId) }),
          ConsistentRead: true,
        }),
      ),
    );
    return out.Item ? toRecord(out.Item) : undefined;
  }

  protected async update(
    connectionId: string,
    parts: UpdateParts,
    returnValues: "ALL_OLD" | "ALL_NEW" | "NONE" = "NONE",
  ): Promise<ChainRecord | undefined> {
    // Condition values are left as given: none compares a ciphertext, and one that did would
    // need the stored form (bytes, or base64 in an item not rewritten since).
    const update: BuiltUpdate = buildUpdate(
      parts.set === undefined ? parts : { ...parts, set: toStoredAttributes(parts.set) },
    );
    try {
      const out = await this.client.send(
        this.watch(
          new UpdateItemCommand({
            TableName: this.tableName,
            Key: marshall({ pk: connectionKey(connectionId) }),
            ...update,
            ReturnValues: returnValues,
            // Real DynamoDB saves the loser a read; dynalite ignores it (nothing here depends on it).
            ...(returnValues === "ALL_OLD" ? { ReturnValuesOnConditionCheckFailure: "ALL_OLD" } : {}),
          }),
        ),
      );
      return toRecord(out.Attributes ?? {});
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw error;
    }
  }

  /** Every request passes here, so every response's Date header measures our clock. */
  protected watch<C extends Parameters<ClockSkewMonitor["attach"]>[0]>(command: C): C {
    return this.skew.attach(command);
  }
}
