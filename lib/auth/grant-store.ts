import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { ChainTable, grantsKey } from "../chain/table-definition.js";

/** The connection ID of the all-connections grants (`grantVend(fn, { allConnections: true })`). */
export const ALL_CONNECTIONS = "*";

/** The string-set attribute of a `GRANTS#…` item: the principal keys (principal.ts) granted. */
export const PRINCIPALS_ATTRIBUTE = "principals";

/** Who may get a connection's tokens from token-vend. */
export interface ConnectionGrants {
  /** Principal keys granted this connection, sorted. */
  readonly principals: readonly string[];
  /** Principal keys granted every connection (from CDK's `allConnections`), sorted. */
  readonly allConnections: readonly string[];
}

/**
 * Grants in the broker's table: one item per connection (`GRANTS#<id>`, and `GRANTS#*` for every
 * connection) holding a string set of principal keys. ADD and DELETE on a set are atomic, so the
 * CLI and any number of CDK custom resources (each adding or removing its own principal) never
 * overwrite each other, and writing the same grant twice is harmless. Grants belong to the
 * connection ID: they outlive a `connection remove` and apply to a connection added again.
 */
export class GrantStore {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;

  constructor(options: { readonly tableName: string; readonly client?: DynamoDBClient }) {
    this.#tableName = options.tableName;
    this.#client = options.client ?? new DynamoDBClient({});
  }

  /** Grants `principal` (a principal key) the connection; `ALL_CONNECTIONS` for every one. */
  async grant(connectionId: string, principal: string): Promise<void> {
    await this.#change("ADD", connectionId, principal);
  }

  /**
   * Takes the grant back. Returns false, writing nothing, when the connection had no such grant
   * (the condition keeps a revoke from creating an empty item).
   */
  async revoke(connectionId: string, principal: string): Promise<boolean> {
    try {
      await this.#change("DELETE", connectionId, principal, "contains(#principals, :one)");
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /** The connection's grants and the all-connections ones, read strongly consistent. */
  async list(connectionId: string): Promise<ConnectionGrants> {
    const [principals, allConnections] = await Promise.all([
      this.#principals(connectionId),
      this.#principals(ALL_CONNECTIONS),
    ]);
    return { principals: [...principals].sort(), allConnections: [...allConnections].sort() };
  }

  /**
   * Whether token-vend may serve the connection to `principal`: granted that connection or every
   * connection. Two GetItems in parallel (one round trip); strongly consistent, so a revoke
   * applies to the next uncached check.
   */
  async isGranted(connectionId: string, principal: string): Promise<boolean> {
    const [own, all] = await Promise.all([this.#principals(connectionId), this.#principals(ALL_CONNECTIONS)]);
    return own.has(principal) || all.has(principal);
  }

  async #principals(connectionId: string): Promise<Set<string>> {
    const out = await this.#client.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: marshall({ [ChainTable.partitionKey]: grantsKey(connectionId) }),
        ProjectionExpression: "#principals",
        ExpressionAttributeNames: { "#principals": PRINCIPALS_ATTRIBUTE },
        ConsistentRead: true,
      }),
    );
    return new Set(out.Item?.[PRINCIPALS_ATTRIBUTE]?.SS ?? []);
  }

  async #change(
    operation: "ADD" | "DELETE",
    connectionId: string,
    principal: string,
    condition?: string,
  ): Promise<void> {
    await this.#client.send(
      new UpdateItemCommand({
        TableName: this.#tableName,
        Key: marshall({ [ChainTable.partitionKey]: grantsKey(connectionId) }),
        UpdateExpression: `${operation} #principals :principal`,
        ExpressionAttributeNames: { "#principals": PRINCIPALS_ATTRIBUTE },
        ExpressionAttributeValues: {
          ":principal": { SS: [principal] },
          ...(condition ? { ":one": { S: principal } } : {}),
        },
        ...(condition ? { ConditionExpression: condition } : {}),
      }),
    );
  }
}
