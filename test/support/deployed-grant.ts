import { type DynamoDBClient, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import {
  DEPLOYED_PRINCIPALS_ATTRIBUTE,
  type DeployedGrant,
  deployedGrantElement,
} from "../../lib/auth/grant-store.js";
import { grantsKey } from "../../lib/chain/table-definition.js";

/**
 * Writes or removes a grant as grantVend's custom resource does at deploy (lib/infra/vend-grants.ts;
 * test/review10/cfn-grant-deploys.ts runs the synthesized resources themselves).
 */
export async function writeDeployedGrant(
  client: DynamoDBClient,
  tableName: string,
  connectionId: string,
  grant: DeployedGrant,
  operation: "ADD" | "DELETE" = "ADD",
): Promise<void> {
  await client.send(
    new UpdateItemCommand({
      TableName: tableName,
      Key: { pk: { S: grantsKey(connectionId) } },
      UpdateExpression: `${operation} #deployed :element`,
      ExpressionAttributeNames: { "#deployed": DEPLOYED_PRINCIPALS_ATTRIBUTE },
      ExpressionAttributeValues: {
        ":element": { SS: [deployedGrantElement(grant.principal, grant.stackName, grant.constructPath)] },
      },
    }),
  );
}
