import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { KMSClient } from "@aws-sdk/client-kms";
import type { CloudFormationCustomResourceEvent } from "aws-lambda";
import { BranchKeyStore } from "../crypto/branch-key-store.js";
import { ValidationError } from "../errors.js";

/** The custom resource's properties: the key store, its KMS key and the branch key to create. */
export interface BranchKeySetupProperties {
  /** The key store's table (the functions' BRANCH_KEY_STORE_TABLE_NAME). */
  readonly TableName: string;
  /** The KMS key ARN that wraps the branch keys (the functions' KMS_KEY_ARN). */
  readonly KmsKeyArn: string;
  /** The branch key to create (the functions' BRANCH_KEY_ID). */
  readonly BranchKeyId: string;
}

/** What the CDK Provider framework's onEvent handler returns. */
export interface BranchKeySetupResult {
  readonly PhysicalResourceId: string;
  readonly Data: { readonly BranchKeyId: string; readonly Setup: string };
}

/** Injected I/O for {@link createBranchKeySetupHandler}. */
export interface BranchKeySetupDeps {
  /** @default a client in the KMS key's region */
  readonly dynamo?: DynamoDBClient;
  /** @default a client in the KMS key's region */
  readonly kms?: KMSClient;
}

/**
 * The deploy-time step that creates the branch key: the onEvent handler of a CDK custom resource
 * (Provider framework), so that the key exists before any function that seals with it is
 * deployed (make the functions depend on the resource).
 *
 * - Create and Update: {@link BranchKeyStore.ensure}, idempotent; an Update that names another
 *   branch key creates it and leaves the old one, whose versions still decrypt the tokens sealed
 *   under it.
 * - Delete: nothing. Deleting a branch key loses every token sealed under it; the table's
 *   removal policy (retain) decides what happens to it.
 *
 * Its role needs, on the KMS key: kms:GenerateDataKeyWithoutPlaintext, kms:ReEncryptFrom,
 * kms:ReEncryptTo; on the table: dynamodb:GetItem, dynamodb:PutItem (the TransactWriteItems of
 * createKey is authorized per Put).
 */
export function createBranchKeySetupHandler(deps: BranchKeySetupDeps = {}) {
  return async function onEvent(event: CloudFormationCustomResourceEvent): Promise<BranchKeySetupResult> {
    const { TableName, KmsKeyArn, BranchKeyId } = propertiesOf(event.ResourceProperties);
    if (event.RequestType === "Delete") {
      return { PhysicalResourceId: event.PhysicalResourceId, Data: { BranchKeyId, Setup: "kept" } };
    }
    const store = new BranchKeyStore({ tableName: TableName, kmsKeyArn: KmsKeyArn, ...deps });
    const setup = await store.ensure(BranchKeyId);
    return { PhysicalResourceId: BranchKeyId, Data: { BranchKeyId, Setup: setup } };
  };
}

function propertiesOf(properties: Record<string, unknown>): BranchKeySetupProperties {
  const value = (name: keyof BranchKeySetupProperties): string => {
    const raw = properties[name];
    if (typeof raw !== "string" || raw.trim() === "") {
      throw new ValidationError(`Branch key setup: ${name} must be a non-empty string`);
    }
    return raw;
  };
  return { TableName: value("TableName"), KmsKeyArn: value("KmsKeyArn"), BranchKeyId: value("BranchKeyId") };
}
