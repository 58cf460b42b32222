import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import type { ChainStatus } from "../../lib/chain/chain-record.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import type { LocalStack } from "../../lib/local/local-stack.js";

/**
 * Puts a connection's item in `status` the way a hand edit would, outside every door (the engine
 * has no unleased write for it, on purpose). Conditional on the generation the test saw, when
 * given, so a test that raced its own setup fails here, not later.
 * @throws ConditionalCheckFailedException when the item is gone or at another generation
 */
export async function forceStatus(
  stack: Pick<LocalStack, "dynamo" | "tableName">,
  connectionId: string,
  change: { readonly status: ChainStatus; readonly statusReason: string; readonly atGeneration?: number },
): Promise<void> {
  const atGeneration = change.atGeneration !== undefined;
  await stack.dynamo.client.send(
    new UpdateItemCommand({
      TableName: stack.tableName,
      Key: marshall({ pk: connectionKey(connectionId) }),
      UpdateExpression: "SET #status = :status, #statusReason = :reason",
      ConditionExpression: `attribute_exists(pk)${atGeneration ? " AND #generation = :generation" : ""}`,
      ExpressionAttributeNames: {
        "#status": "status",
        "#statusReason": "statusReason",
        ...(atGeneration ? { "#generation": "generation" } : {}),
      },
      ExpressionAttributeValues: marshall({
        ":status": change.status,
        ":reason": change.statusReason,
        ...(atGeneration ? { ":generation": change.atGeneration } : {}),
      }),
    }),
  );
}
