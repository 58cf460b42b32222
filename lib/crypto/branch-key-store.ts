import { BranchKeyStoreNode } from "@aws-crypto/branch-keystore-node";
import {
  type CreateTableCommandInput,
  DynamoDBClient,
  GetItemCommand,
  TransactionCanceledException,
} from "@aws-sdk/client-dynamodb";
import type { KMSClient } from "@aws-sdk/client-kms";

/**
 * The branch key store: a DynamoDB table of branch keys, each wrapped by the stack's KMS key,
 * from which the hierarchical keyring (token-cipher.ts) derives every token's data key.
 *
 * ## One branch key per stack
 *
 * The cipher encrypts every connection's tokens under one branch key (BRANCH_KEY_ID), not one
 * per connection or per shard. What keeps chains apart is not the key but the encryption
 * context `{ app, connectionId, kind, incarnation }`, as with the one KMS key before it:
 * - each message has its own random data key, wrapped with an AES-GCM key derived (HKDF, counter
 *   mode) from the branch key and a random per-message salt, with the serialized encryption
 *   context in the wrap's AAD; the message header, context included, is authenticated under a
 *   key committed to that data key. Change one byte of a ciphertext's context to another chain's
 *   and neither the data key nor the header opens.
 * - an intact ciphertext copied to another chain's item does decrypt (its own context is
 *   authentic), and token-cipher.ts then refuses it because that context is not exactly the one
 *   the item's connection, kind and incarnation give. No ciphertext of chain A ever opens as B's.
 *
 * Per-connection branch keys would add isolation only against a principal allowed to unwrap some
 * branch keys and not others. The broker has no such principal: every function role decrypts
 * every chain's tokens (README, Trust boundary), so a per-connection key would separate nothing
 * the roles do not already join. And they cost: a key load (one GetItem and one KMS Decrypt) per
 * connection, container and cache TTL, which at 10,000 connections spread over a refresh
 * worker's containers is about one KMS call per refresh again, today's bill; plus three KMS calls
 * and a transaction per connection added. N shards cost N loads per container and TTL and still
 * isolate nothing from a role that loads all N. One key: two loads per container and TTL (the
 * keyring caches the active key for encrypting and each version for decrypting separately),
 * whatever the number of connections.
 *
 * What one key does change: a warm container holds the branch key's plaintext for up to
 * {@link BRANCH_KEY_CACHE_TTL_SECONDS}, where before it held only the data keys of the messages
 * it handled. Reading that memory plus the table opens every token; but whoever runs code in
 * the function can already ask KMS to open every token. {@link BranchKeyStore.rotate} starts a
 * new version (older versions keep decrypting their messages).
 */
export const BranchKeyTable = {
  /** The key store's schema, fixed by the Encryption SDK: both keys are strings. */
  partitionKey: "branch-key-id",
  sortKey: "type",
  /** The sort key of a branch key's active version. */
  activeType: "branch:ACTIVE",
} as const;

/**
 * Bound into the KMS encryption context of every branch key the store creates (`tablename`), and
 * checked on every load. A constant, not the table's name, so a table restored from a backup
 * under another name still loads its keys; items copied from another stack's table do not, since
 * another stack's KMS key wraps them. Changing it orphans every existing branch key.
 */
export const BRANCH_KEY_STORE_LOGICAL_NAME = "exact-token-broker";

/** The branch key ID a deployment uses unless it names another (BRANCH_KEY_ID). */
export const DEFAULT_BRANCH_KEY_ID = "exact-token-broker-tokens";

/**
 * How long (seconds) a container reuses a loaded branch key before it loads it again (one
 * GetItem and one KMS Decrypt). Cost is not the bound: at 10 minutes a container makes at most
 * 12 loads an hour, about $0.01 a month in KMS requests per container kept warm. The bound is
 * how long a warm container goes on encrypting and decrypting after the KMS key is disabled, its
 * grant revoked or the branch key rotated: ten minutes, the longest lease (lib/config.ts).
 */
export const BRANCH_KEY_CACHE_TTL_SECONDS = 600;

/** Custom encryption context of the branch keys we create (`aws-crypto-ec:app` on each item). */
const BRANCH_KEY_CONTEXT = { app: "exact-token-broker" } as const;

/** CreateTable input for the key store (tests, local runs). On-demand billing, like the stack's tables. */
export function branchKeyTableInput(tableName: string): CreateTableCommandInput {
  const { partitionKey, sortKey } = BranchKeyTable;
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [
      { AttributeName: partitionKey, AttributeType: "S" },
      { AttributeName: sortKey, AttributeType: "S" },
    ],
    KeySchema: [
      { AttributeName: partitionKey, KeyType: "HASH" },
      { AttributeName: sortKey, KeyType: "RANGE" },
    ],
  };
}

/** Where the store lives and how it is reached. */
export interface BranchKeyStoreOptions {
  /** The key store's DynamoDB table (BRANCH_KEY_STORE_TABLE_NAME). */
  readonly tableName: string;
  /** The KMS key that wraps the branch keys (KMS_KEY_ARN): a full key ARN, not an alias. */
  readonly kmsKeyArn: string;
  /** @default a client in the KMS key's region, created by the Encryption SDK */
  readonly dynamo?: DynamoDBClient | undefined;
  /** @default a client in the KMS key's region, created by the Encryption SDK */
  readonly kms?: KMSClient | undefined;
}

/** What {@link BranchKeyStore.ensure} found. */
export const BranchKeySetup = {
  Created: "created",
  Existing: "existing",
} as const;
export type BranchKeySetup = (typeof BranchKeySetup)[keyof typeof BranchKeySetup];

/**
 * The Encryption SDK's {@link BranchKeyStoreNode} over our table and KMS key, with the two
 * operator steps: create the branch key once ({@link ensure}, deploy time) and rotate it.
 *
 * Requests: a load (the keyring's cache miss) is one GetItem (eventually consistent) and one KMS
 * Decrypt. {@link ensure} is one consistent GetItem, and when the key is new two
 * GenerateDataKeyWithoutPlaintext, one ReEncrypt and one TransactWriteItems of three puts.
 * {@link rotate} is one GetItem, two ReEncrypt, one GenerateDataKeyWithoutPlaintext and one
 * TransactWriteItems of two puts. dynalite has no TransactWriteItems: create keys against real
 * DynamoDB or moto.
 */
export class BranchKeyStore {
  /** What the hierarchical keyring loads branch keys from. */
  readonly keyStore: BranchKeyStoreNode;
  readonly #tableName: string;
  readonly #dynamo: DynamoDBClient;

  constructor({ tableName, kmsKeyArn, dynamo, kms }: BranchKeyStoreOptions) {
    this.#tableName = tableName;
    // Built here, not left to the SDK, so ensure() reads the table through the same client.
    this.#dynamo = dynamo ?? new DynamoDBClient({ region: regionOf(kmsKeyArn) });
    this.keyStore = new BranchKeyStoreNode({
      logicalKeyStoreName: BRANCH_KEY_STORE_LOGICAL_NAME,
      storage: { ddbTableName: tableName, ddbClient: this.#dynamo },
      kmsConfiguration: { identifier: kmsKeyArn },
      ...(kms ? { keyManagement: { kmsClient: kms } } : {}),
    });
  }

  /**
   * Creates the branch key `branchKeyId` unless it exists; idempotent, so a deploy may run it on
   * every create and update. Never deletes or replaces a key: its versions decrypt every token
   * sealed under it.
   */
  async ensure(branchKeyId: string): Promise<BranchKeySetup> {
    if (await this.exists(branchKeyId)) return BranchKeySetup.Existing;
    try {
      await this.keyStore.createKey({
        branchKeyIdentifier: branchKeyId,
        encryptionContext: BRANCH_KEY_CONTEXT,
      });
      return BranchKeySetup.Created;
    } catch (error) {
      // Two deploys at once: the transaction's attribute_not_exists lets one of them create it.
      if (error instanceof TransactionCanceledException && (await this.exists(branchKeyId))) {
        return BranchKeySetup.Existing;
      }
      throw error;
    }
  }

  /**
   * Makes a new version of the branch key active. Containers pick it up for encrypting within
   * {@link BRANCH_KEY_CACHE_TTL_SECONDS}; messages under older versions keep decrypting (each
   * names its version, and the store keeps every version).
   */
  async rotate(branchKeyId: string): Promise<void> {
    await this.keyStore.versionKey({ branchKeyIdentifier: branchKeyId });
  }

  /** Whether the branch key has an active version: one consistent GetItem, no KMS call. */
  async exists(branchKeyId: string): Promise<boolean> {
    const { partitionKey, sortKey, activeType } = BranchKeyTable;
    const { Item } = await this.#dynamo.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: { [partitionKey]: { S: branchKeyId }, [sortKey]: { S: activeType } },
        ProjectionExpression: "#type",
        ExpressionAttributeNames: { "#type": sortKey },
        ConsistentRead: true,
      }),
    );
    return Item !== undefined;
  }
}

/** `arn:aws:kms:<region>:<account>:key/<id>` → region; undefined leaves it to the SDK's default chain. */
function regionOf(kmsKeyArn: string): string | undefined {
  const region = kmsKeyArn.split(":")[3];
  return region === undefined || region === "" ? undefined : region;
}
