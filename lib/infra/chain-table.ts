import { RemovalPolicy } from "aws-cdk-lib";
import { AttributeType, BillingMode, ProjectionType, Table, TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import { Grant, type IGrantable } from "aws-cdk-lib/aws-iam";
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

/** The item-level DynamoDB actions the engine uses (lib/chain/chain-store.ts, lib/onboarding/nonce-store.ts). */
export type ChainItemAction =
  | "dynamodb:GetItem"
  | "dynamodb:PutItem"
  | "dynamodb:UpdateItem"
  | "dynamodb:DeleteItem";

/**
 * The kinds of items in the broker's table, by the prefix of their partition key
 * (lib/chain/table-definition.ts builds the keys): what a role's `dynamodb:LeadingKeys` condition
 * names.
 */
export const ItemKind = {
  Connection: "CONN#",
  Guard: "GUARD#",
  Nonce: "NONCE#",
  TotpClaim: "TOTP#",
  App: "APP#",
  History: "HIST#",
  /** Who token-vend serves which connection to (lib/auth/grant-store.ts). */
  Grants: "GRANTS#",
  /** The refresh dispatcher's cursor (lib/chain/dispatch-cursor.ts). */
  Dispatch: "DISPATCH#",
} as const;
export type ItemKind = (typeof ItemKind)[keyof typeof ItemKind];

/**
 * The broker's one table, built from the same definition as `exact-broker table create`
 * (lib/chain/table-definition.ts): key, sparse refresher index, TTL attribute (link nonces and
 * anything else that is history expire by it).
 *
 * `Table`, not `TableV2`: TableV2 with a customer-managed key cannot synthesize in a
 * region-agnostic stack (toolchain notes).
 */
export class ChainTableConstruct extends Construct {
  readonly table: Table;
  /** ARN of the refresher's sparse index: the only index, and the only thing ever queried. */
  readonly dueIndexArn: string;

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
    this.dueIndexArn = `${this.table.tableArn}/index/${Definition.dueIndex.name}`;
  }

  /**
   * Exactly the given item actions on the table's items of the given kinds, and nothing else: no
   * Scan, no batch or transaction calls, not the index, no KMS (the key grants its own actions),
   * no item of another kind. The kinds are a `dynamodb:LeadingKeys` condition on the items'
   * partition key, `ForAllValues:StringLike` as the DynamoDB developer guide's fine-grained
   * access examples use it ("Using IAM policy conditions for fine-grained access control"). Safe
   * with `ForAllValues` (which also holds when a request has no key) because every action here
   * names exactly one item.
   */
  grantItems(grantee: IGrantable, kinds: readonly ItemKind[], ...actions: ChainItemAction[]): Grant {
    return Grant.addToPrincipal({
      grantee,
      actions,
      resourceArns: [this.table.tableArn],
      conditions: {
        "ForAllValues:StringLike": { "dynamodb:LeadingKeys": kinds.map((kind) => `${kind}*`) },
      },
    });
  }

  /** `dynamodb:Query` on the sparse "due" index, for the scheduled refresher. */
  grantDueQuery(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({ grantee, actions: ["dynamodb:Query"], resourceArns: [this.dueIndexArn] });
  }
}
