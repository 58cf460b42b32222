import { type DynamoDBClient, GetItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { isConditionFailure } from "./chain-table-client.js";
import { dispatchCursorKey } from "./table-definition.js";

/** The item: how far the refresh dispatcher has queued the due index's main partition. */
interface DispatchCursorItem {
  readonly pk: string;
  /** Epoch ms (the engine's clock): every chain due at or before it has been queued. */
  readonly queuedThroughMs: number;
}

/**
 * The refresh dispatcher's cursor (refresh-dispatch.ts): one small item of the chain table. Each
 * tick queues the due times after it and moves it on, so ticks meet end to end however late or
 * early EventBridge starts them, and a tick that never ran or failed leaves its due times to the
 * next one. One read and one write a minute for the whole table.
 */
export class DispatchCursor {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;

  constructor(client: DynamoDBClient, tableName: string) {
    this.#client = client;
    this.#tableName = tableName;
  }

  /** Epoch ms through which chains are queued; undefined before the first tick. A consistent read. */
  async read(): Promise<number | undefined> {
    const out = await this.#client.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: marshall({ pk: dispatchCursorKey }),
        ConsistentRead: true,
      }),
    );
    return out.Item ? (unmarshall(out.Item) as DispatchCursorItem).queuedThroughMs : undefined;
  }

  /**
   * Moves the cursor from `fromMs` (what {@link read} gave) to `toMs`, only if nobody moved it
   * meanwhile: of two overlapping ticks one moves it, and the other's queueing was a harmless
   * duplicate.
   * @returns false when another tick moved it first
   */
  async advance(fromMs: number | undefined, toMs: number): Promise<boolean> {
    const item: DispatchCursorItem = { pk: dispatchCursorKey, queuedThroughMs: toMs };
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#tableName,
          Key: marshall({ pk: item.pk }),
          UpdateExpression: "SET #through = :to",
          ConditionExpression: fromMs === undefined ? "attribute_not_exists(#through)" : "#through = :from",
          ExpressionAttributeNames: { "#through": "queuedThroughMs" },
          ExpressionAttributeValues: marshall({
            ":to": item.queuedThroughMs,
            ...(fromMs === undefined ? {} : { ":from": fromMs }),
          }),
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}
