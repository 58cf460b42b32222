import { RemovalPolicy } from "aws-cdk-lib";
import { AttributeType, BillingMode, ProjectionType, Table, TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import type { IKey } from "aws-cdk-lib/aws-kms";
import { Construct } from "constructs";
import { ChainTable as Definition } from "../chain/table-definition.js";

export interface ChainTableProps {
  /** Customer-managed key that encrypts the table at rest. */
  readonly encryptionKey: IKey;
  /**
   * Protects the table (and every live refresh-token chain in it) from `cdk destroy`.
   * @default true
   */
  readonly deletionProtection?: boolean;
}

/**
 * The broker's one table, built from the same definition as `exact-broker table create`
 * (lib/chain/table-definition.ts): key, sparse refresher index, TTL attribute.
 *
 * `Table`, not `TableV2`: TableV2 with a customer-managed key cannot synthesize in a
 * region-agnostic stack (toolchain notes).
 */
export class ChainTableConstruct extends Construct {
  readonly table: Table;

  constructor(scope: Construct, id: string, props: ChainTableProps) {
    super(scope, id);
    const protect = props.deletionProtection ?? true;
    this.table = new Table(this, "Table", {
      partitionKey: { name: Definition.partitionKey, type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: props.encryptionKey,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: protect,
      removalPolicy: protect ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      timeToLiveAttribute: Definition.ttlAttribute,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: Definition.dueIndex.name,
      partitionKey: { name: Definition.dueIndex.partitionKey, type: AttributeType.STRING },
      sortKey: { name: Definition.dueIndex.sortKey, type: AttributeType.NUMBER },
      projectionType: ProjectionType.KEYS_ONLY,
    });
  }
}
