import { join } from "node:path";
import { CustomResource, Duration, RemovalPolicy } from "aws-cdk-lib";
import { AttributeType, BillingMode, Table, TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import { Grant, type IGrantable, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import type { IKey } from "aws-cdk-lib/aws-kms";
import { Architecture, Runtime } from "aws-cdk-lib/aws-lambda";
import { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { Provider } from "aws-cdk-lib/custom-resources";
import { Construct } from "constructs";
import {
  BRANCH_KEY_STORE_LOGICAL_NAME,
  BranchKeyTable,
  DEFAULT_BRANCH_KEY_ID,
} from "../crypto/branch-key-store.js";
import type { BranchKeySetupProperties } from "../handlers/branch-key-setup-handler.js";
import { cdkBundling, FUNCTION_NODE_OPTIONS, PROJECT_ROOT, projectFiles } from "./bundling.js";
import { acknowledgeWildcardResource } from "./nag.js";

export interface BranchKeyStoreProps {
  /** The stack's KMS key: it wraps the branch keys (and still opens tokens sealed before them). */
  readonly key: IKey;
  /**
   * Protects the key store from `cdk destroy` as the chain table is protected: without its branch
   * key no token in the chain table opens.
   * @default true
   */
  readonly deletionProtection?: boolean;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
}

/** The environment the hierarchical keyring reads (lib/crypto/token-cipher.ts). */
export interface BranchKeyEnvironment {
  readonly BRANCH_KEY_STORE_TABLE_NAME: string;
  readonly BRANCH_KEY_ID: string;
}

/**
 * The branch key store (lib/crypto/branch-key-store.ts) and the deploy step that creates the
 * stack's one branch key in it, so that the functions seal tokens with the hierarchical keyring:
 * a KMS call per branch key load (a container's first use, then every 10 minutes) instead of one
 * or more per token.
 *
 * - The table: the Encryption SDK's schema (`branch-key-id`, `type`), on-demand, point-in-time
 *   recovery, protected and retained like the chain table. Encrypted with DynamoDB's own
 *   (AWS-owned) key, not the stack's: every item's secret part is a branch key already wrapped by
 *   the stack's KMS key under an encryption context naming it, and the rest is metadata (ID,
 *   version, creation time, the key's ARN). A customer-managed key would add a `kms:Decrypt` via
 *   DynamoDB to every role that reads it, and protect nothing the KMS wrapping does not.
 * - The branch key ID is {@link DEFAULT_BRANCH_KEY_ID}, the same in every stack (each stack has
 *   its own table and its own KMS key). It must never change: the hierarchical keyring opens a
 *   token only with the branch key it is configured with, so tokens sealed under another ID would
 *   no longer open.
 * - The branch key is created by a custom resource (Provider framework; onEvent is
 *   functions/branch-key-setup.ts) on create and, idempotently, on update; its delete does
 *   nothing. {@link branchKey} is what the functions depend on, so none of them runs with the
 *   branch key settings before the key exists.
 */
export class BranchKeyStoreConstruct extends Construct {
  readonly table: Table;
  /** The branch key every function seals with (BRANCH_KEY_ID). */
  readonly branchKeyId: string = DEFAULT_BRANCH_KEY_ID;
  /** Creates the branch key: runs functions/branch-key-setup.ts. */
  readonly setupFunction: NodejsFunction;
  /** The Provider framework's function, which calls {@link setupFunction} and answers CloudFormation. */
  readonly provider: Provider;
  /** The branch key, as CloudFormation knows it: depend on it before sealing with it. */
  readonly branchKey: CustomResource;
  /** The setup function's role: creates branch keys, nothing else. */
  readonly setupRole: Role;
  /** The Provider framework function's role: invokes the setup function and writes its own logs. */
  readonly providerRole: Role;

  readonly #key: IKey;

  constructor(scope: Construct, id: string, props: BranchKeyStoreProps) {
    super(scope, id);
    this.#key = props.key;
    const protect = props.deletionProtection ?? true;
    const retention = props.logRetention ?? RetentionDays.ONE_MONTH;
    this.table = new Table(this, "Table", {
      partitionKey: { name: BranchKeyTable.partitionKey, type: AttributeType.STRING },
      sortKey: { name: BranchKeyTable.sortKey, type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      encryption: TableEncryption.DEFAULT,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: protect,
      removalPolicy: protect ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });

    const setupLogs = new LogGroup(this, "SetupLogs", { retention, removalPolicy: RemovalPolicy.DESTROY });
    this.setupRole = new Role(this, "SetupRole", {
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
      description: "exact-token-broker branch-key-setup",
    });
    setupLogs.grantWrite(this.setupRole);
    this.setupFunction = new NodejsFunction(this, "Setup", {
      description: "exact-token-broker branch-key-setup: creates the branch key at deploy",
      // Not one of the broker's FunctionName functions: no engine, no timing settings.
      entry: join(PROJECT_ROOT, "functions", "branch-key-setup.ts"),
      handler: "handler",
      ...projectFiles(),
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: 256,
      // One consistent GetItem; for a new key three KMS calls and one transaction: about a second.
      timeout: Duration.minutes(1),
      role: this.setupRole,
      logGroup: setupLogs,
      bundling: cdkBundling(),
      environment: { NODE_OPTIONS: FUNCTION_NODE_OPTIONS },
    });
    this.#grantSetup(this.setupRole);

    const providerLogs = new LogGroup(this, "ProviderLogs", {
      retention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.providerRole = new Role(this, "ProviderRole", {
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
      description: "exact-token-broker branch-key-setup provider framework",
    });
    providerLogs.grantWrite(this.providerRole);
    this.provider = new Provider(this, "Provider", {
      onEventHandler: this.setupFunction,
      frameworkOnEventRole: this.providerRole,
      logGroup: providerLogs,
    });
    // The framework's grantInvoke names the function and, for its versions and aliases, `<arn>:*`.
    acknowledgeWildcardResource(
      this.providerRole,
      `${this.setupFunction.functionArn}:*`,
      "The CDK Provider framework grants its onEvent function lambda:InvokeFunction on the setup " +
        "function's ARN and on `<ARN>:*` (its versions and aliases); the setup function has neither, so " +
        "the wildcard reaches nothing but the function itself.",
    );

    const properties: BranchKeySetupProperties = {
      TableName: this.table.tableName,
      KmsKeyArn: props.key.keyArn,
      BranchKeyId: this.branchKeyId,
    };
    this.branchKey = new CustomResource(this, "BranchKey", {
      serviceToken: this.provider.serviceToken,
      resourceType: "Custom::ExactBrokerBranchKey",
      properties: { ...properties },
    });
  }

  /** BRANCH_KEY_STORE_TABLE_NAME and BRANCH_KEY_ID, for a function that seals or opens tokens. */
  get environment(): BranchKeyEnvironment {
    return { BRANCH_KEY_STORE_TABLE_NAME: this.table.tableName, BRANCH_KEY_ID: this.branchKeyId };
  }

  /**
   * What loading the branch key takes from the table: `dynamodb:GetItem` on the items of
   * {@link branchKeyId} (its active version and each version a token names), nothing else. The
   * KMS side, `kms:Decrypt` on the key, is granted by `TokenKey.grantKeyring` (token-key.ts).
   */
  grantLoad(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({
      grantee,
      actions: ["dynamodb:GetItem"],
      resourceArns: [this.table.tableArn],
      conditions: this.#onBranchKey(),
    });
  }

  /**
   * What `BranchKeyStore.ensure` (lib/crypto/branch-key-store.ts) calls: on the table a
   * consistent GetItem and the TransactWriteItems of createKey, which IAM authorizes as one
   * PutItem per Put; on the KMS key GenerateDataKeyWithoutPlaintext (the branch key and the
   * beacon key) and ReEncrypt (from and to the same key: the ACTIVE copy), only under an
   * encryption context naming this key store and branch key (the Encryption SDK's `tablename` is
   * the logical store name, not the table's). No kms:Decrypt: the setup never unwraps a branch
   * key, and the table is not encrypted with the key.
   */
  #grantSetup(grantee: IGrantable): void {
    Grant.addToPrincipal({
      grantee,
      actions: ["dynamodb:GetItem", "dynamodb:PutItem"],
      resourceArns: [this.table.tableArn],
      conditions: this.#onBranchKey(),
    });
    Grant.addToPrincipal({
      grantee,
      actions: ["kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
      resourceArns: [this.#key.keyArn],
      conditions: {
        StringEquals: {
          "kms:EncryptionContext:tablename": BRANCH_KEY_STORE_LOGICAL_NAME,
          "kms:EncryptionContext:branch-key-id": this.branchKeyId,
        },
      },
    });
  }

  /** Items of the stack's branch key only (the partition key is the branch key ID). */
  #onBranchKey() {
    return { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [this.branchKeyId] } };
  }
}
