import { App } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { ChainTable } from "../../lib/chain/table-definition.js";
import { BrokerStack } from "../../lib/infra/broker-stack.js";

describe("BrokerStack", () => {
  const template = Template.fromStack(new BrokerStack(new App(), "Test"));

  it("builds the chain table from the CLI's table definition", () => {
    template.hasResourceProperties("AWS::DynamoDB::Table", {
      KeySchema: [{ AttributeName: ChainTable.partitionKey, KeyType: "HASH" }],
      BillingMode: "PAY_PER_REQUEST",
      DeletionProtectionEnabled: true,
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true, SSEType: "KMS", KMSMasterKeyId: Match.anyValue() },
      TimeToLiveSpecification: { AttributeName: ChainTable.ttlAttribute, Enabled: true },
      GlobalSecondaryIndexes: [
        Match.objectLike({
          IndexName: ChainTable.dueIndex.name,
          KeySchema: [
            { AttributeName: ChainTable.dueIndex.partitionKey, KeyType: "HASH" },
            { AttributeName: ChainTable.dueIndex.sortKey, KeyType: "RANGE" },
          ],
        }),
      ],
    });
  });

  it("retains the table on stack deletion unless protection is turned off", () => {
    template.hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Retain" });
    const open = Template.fromStack(new BrokerStack(new App(), "Open", { deletionProtection: false }));
    open.hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Delete" });
  });

  it("rotates its customer-managed key", () => {
    template.hasResourceProperties("AWS::KMS::Key", { EnableKeyRotation: true });
    expect(template.findResources("AWS::KMS::Key")).not.toEqual({});
  });
});
