import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { ChainTable, nonceKey } from "../chain/table-definition.js";

/**
 * The two single-use steps of one link: starting the authorization (the confirmation page's
 * POST to `/start`; merely fetching the link claims nothing) and completing it with its state
 * (`/callback`). Separate markers, so starting does not use up the state and each can be used
 * exactly once.
 */
export const NonceMarker = { Opened: "opened", Completed: "completed" } as const;
export type NonceMarker = (typeof NonceMarker)[keyof typeof NonceMarker];

/**
 * Markers stay a while after the link or state expired. Not needed for safety (an expired
 * signature is refused before the marker is looked at) but it keeps the audit trail for a day.
 */
export const NONCE_RETENTION_SECONDS = 24 * 60 * 60;

/** Single-use markers for connect links, in the broker's table (`NONCE#…` items, removed by TTL). */
export class NonceStore {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;

  constructor(options: { readonly tableName: string; readonly client?: DynamoDBClient }) {
    this.#tableName = options.tableName;
    this.#client = options.client ?? new DynamoDBClient({});
  }

  /**
   * Whether the marker was claimed: a strongly consistent read, so a claim that just won is seen.
   * Lets a page say "already used" without claiming anything; the claim itself still decides.
   */
  async isClaimed(nonce: string, marker: NonceMarker): Promise<boolean> {
    const out = await this.#client.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: marshall({ [ChainTable.partitionKey]: nonceKey(`${nonce}#${marker}`) }),
        ProjectionExpression: "#pk",
        ExpressionAttributeNames: { "#pk": ChainTable.partitionKey },
        ConsistentRead: true,
      }),
    );
    return out.Item !== undefined;
  }

  /**
   * Claims one marker of a nonce. One conditional PutItem decides: of any number of concurrent
   * claims exactly one returns true, and every later one false.
   */
  async claim(args: {
    readonly nonce: string;
    readonly marker: NonceMarker;
    readonly connectionId: string;
    /** When the link or state this marker belongs to stops being valid. */
    readonly validUntilEpochSec: number;
    readonly nowMs: number;
  }): Promise<boolean> {
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#tableName,
          Item: marshall({
            [ChainTable.partitionKey]: nonceKey(`${args.nonce}#${args.marker}`),
            marker: args.marker,
            connectionId: args.connectionId,
            claimedAtMs: args.nowMs,
            [ChainTable.ttlAttribute]: args.validUntilEpochSec + NONCE_RETENTION_SECONDS,
          }),
          ConditionExpression: "attribute_not_exists(#pk)",
          ExpressionAttributeNames: { "#pk": ChainTable.partitionKey },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
