import { randomBytes } from "node:crypto";
// The Encryption SDK's own packages rather than @aws-crypto/client-node, which re-exports them all
// as CommonJS: esbuild cannot tree-shake that, so every function bundle carried the RSA and
// hierarchical keyrings, the branch key store and the ECDSA (asn1.js, bn.js) code our
// non-signing suite never runs. These ES builds shake down to what is used here.
import {
  getLocalCryptographicMaterialsCache,
  NodeCachingMaterialsManager,
} from "@aws-crypto/caching-materials-manager-node";
import { buildDecrypt } from "@aws-crypto/decrypt-node";
import { buildEncrypt } from "@aws-crypto/encrypt-node";
import {
  KmsHierarchicalKeyRingNode,
  KmsKeyringNode,
  type KmsNodeClientSupplier,
} from "@aws-crypto/kms-keyring-node";
import {
  AlgorithmSuiteIdentifier,
  CommitmentPolicy,
  type EncryptionContext,
  type KeyringNode,
  MultiKeyringNode,
  NodeAlgorithmSuite,
  type NodeMaterialsManager,
} from "@aws-crypto/material-management-node";
import { RawAesKeyringNode, RawAesWrappingSuiteIdentifier } from "@aws-crypto/raw-aes-keyring-node";
import { deserializeFactory } from "@aws-crypto/serialize";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { KMSClient } from "@aws-sdk/client-kms";
import { ConfigurationError, EncryptionUnavailable, TokenDecryptError } from "../errors.js";
import { registerSecret } from "../log/redactor.js";
import { BRANCH_KEY_CACHE_TTL_SECONDS, BranchKeyStore } from "./branch-key-store.js";
import { decodeLocalKey } from "./local-key.js";
import { packToken, unpackToken } from "./token-packing.js";

/** Which of a chain's two tokens a ciphertext holds. */
export type TokenKind = "access" | "refresh";

const TOKEN_KINDS: readonly TokenKind[] = ["access", "refresh"];

/**
 * What a ciphertext is bound to: it decrypts for this connection, kind and incarnation only
 * (design invariant 9; the incarnation is ChainRecord.incarnation, lib/chain/chain-record.ts).
 */
export interface TokenBinding {
  readonly connectionId: string;
  readonly kind: TokenKind;
  /**
   * The connection's incarnation: the encryption context then is exactly
   * `{ app, connectionId, kind, incarnation }`. Undefined only for tokens written before
   * incarnations existed, whose context is exactly `{ app, connectionId, kind }`.
   */
  readonly incarnation?: string;
}

/** The chain whose tokens a {@link PreparedSealer} seals: a {@link TokenBinding} without the kind. */
export interface ChainBinding {
  readonly connectionId: string;
  readonly incarnation?: string;
}

/** Encrypts tokens at rest, each bound to its chain and kind through the encryption context. */
export interface TokenCipher {
  /**
   * base64 ciphertext bound to the connection, token kind and incarnation via the encryption
   * context. With the KMS keyring each call asks KMS for a data key (GenerateDataKey); with the
   * hierarchical keyring only a call that finds no cached branch key makes network calls (its
   * load: one GetItem, one KMS Decrypt). It fails when those do.
   */
  encrypt(plaintext: string, binding: TokenBinding): Promise<string>;
  /**
   * throws TokenDecryptError (lib/errors.ts) on any failure, including a context that is not
   * exactly the one binding gives (another connection, kind or incarnation, or an incarnation on
   * one side only); never includes plaintext or key material in the message
   */
  decrypt(ciphertext: string, binding: TokenBinding): Promise<string>;
  /**
   * Fetches the data keys for this chain's tokens now (KMS GenerateDataKey with the KMS keyring;
   * with the hierarchical keyring, the branch key unless it is cached), so that sealing the tokens
   * Exact returns needs no network call. Call it before the token call; throws what encrypt throws.
   */
  prepare(chain: ChainBinding): Promise<PreparedSealer>;
}

/**
 * Seals a chain's new tokens with key material fetched beforehand: nothing that can fail stands
 * between Exact's answer and the write that persists the tokens (a lost write loses the chain,
 * since Exact has already retired the old refresh token).
 */
export interface PreparedSealer {
  /**
   * Encrypts with the key material fetched by prepare(), bound like `encrypt` (same context rules,
   * decrypts with `decrypt`); makes no KMS or other network call. Usable for
   * {@link PREPARED_SEALER_TTL_MS} after prepare(); later calls still seal, but fetch a new data key
   * like `encrypt` does.
   */
  seal(plaintext: string, kind: TokenKind): Promise<string>;
}

/**
 * How long (ms) a {@link PreparedSealer} seals without KMS: 10 minutes, the longest lease
 * lib/config.ts allows (LEASE_SECONDS and LOGIN_LEASE_SECONDS ≤ 600), so key material fetched when
 * a lease is taken outlasts any token call made under it.
 */
export const PREPARED_SEALER_TTL_MS = 10 * 60 * 1000;

/**
 * Environment read by {@link createTokenCipher}: exactly one of `KMS_KEY_ARN` and
 * `LOCAL_ENCRYPTION_KEY`; with `KMS_KEY_ARN`, optionally both branch key variables.
 */
export interface TokenCipherEnv {
  /**
   * KMS key (ARN) that generates and wraps each data key; used in AWS. With the branch key store
   * it wraps the branch keys instead, and still decrypts tokens sealed before the store was set.
   */
  KMS_KEY_ARN?: string;
  /** base64 of a 32-byte AES key for a raw keyring; used locally (`npm start`, tests). */
  LOCAL_ENCRYPTION_KEY?: string;
  /**
   * The branch key store's DynamoDB table (lib/crypto/branch-key-store.ts). Set with
   * `BRANCH_KEY_ID` and `KMS_KEY_ARN`: new tokens are sealed with the hierarchical keyring, which
   * calls KMS once per branch key load instead of once per token.
   */
  BRANCH_KEY_STORE_TABLE_NAME?: string;
  /** The branch key that seals new tokens; created beforehand by {@link BranchKeyStore.ensure}. */
  BRANCH_KEY_ID?: string;
  /**
   * `off` seals tokens unpacked (token-packing.ts), as releases before packing did, which read no
   * packed token: the first deploy of an upgrade from such a release sets it, so no function
   * still running the old code meets a packed token; the next deploy drops it. Packed or not,
   * every token opens. @default on
   */
  TOKEN_PACKING?: string;
}

/** Injected I/O for {@link createTokenCipher}. */
export interface TokenCipherDeps {
  /**
   * Gives the KMS client for a region (the KMS keyring passes the key ARN's region).
   * @default the Encryption SDK's own per-region cached KMS clients
   */
  kmsClientProvider?: KmsNodeClientSupplier;
  /**
   * The KMS client that unwraps branch keys.
   * @default a client in the KMS key's region, created by the Encryption SDK
   */
  branchKeyKmsClient?: KMSClient;
  /**
   * The client that reads the branch key store (the broker passes its own, one client per process).
   * @default a client in the KMS key's region
   */
  branchKeyDynamoClient?: DynamoDBClient;
}

/** Marks our ciphertexts, so a message from another application never passes the context check. */
export const ENCRYPTION_CONTEXT_APP = "exact-token-broker";
const LOCAL_KEY_NAMESPACE = "exact-token-broker";
const LOCAL_KEY_NAME = "local";

/**
 * Non-signing but key-committing: tokens are written and read by the same trusted role, so an
 * ECDSA signature buys nothing and costs ~4 ms per decrypt (toolchain notes); commitment still
 * stops one ciphertext from decrypting to different plaintexts under different data keys.
 */
const SUITE_ID = AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY;

// One SDK client per process: it holds no key material, only the policy (client-node's
// buildClient is exactly these two spread into one object).
const sdk = {
  ...buildEncrypt(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT),
  ...buildDecrypt(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT),
};

/**
 * Creates a {@link TokenCipher}: with `KMS_KEY_ARN`, the KMS keyring, or the hierarchical keyring
 * when the branch key store is set too (`BRANCH_KEY_STORE_TABLE_NAME`, `BRANCH_KEY_ID`); a raw
 * AES keyring from `LOCAL_ENCRYPTION_KEY` otherwise. The keyrings are built once here, so
 * configuration errors surface at start and warm invocations reuse them (and the branch keys the
 * hierarchical keyring caches).
 *
 * Every plaintext that passes through the cipher is registered with the log redactor: whatever
 * it is, it is a token and must never reach a log line.
 *
 * @throws ConfigurationError when both or neither of `KMS_KEY_ARN` and `LOCAL_ENCRYPTION_KEY` is
 *   set, or only one of the branch key variables, or the branch key store without `KMS_KEY_ARN`,
 *   or the local key is not base64 of exactly 32 bytes, or the KMS key identifier is malformed;
 *   the key is never echoed.
 */
export function createTokenCipher(env: TokenCipherEnv, deps: TokenCipherDeps = {}): TokenCipher {
  const keyrings = buildKeyrings(env, deps);
  const pack = packingFrom(env.TOKEN_PACKING);
  const preparedCache = getLocalCryptographicMaterialsCache(PREPARED_CACHE_CAPACITY);

  return {
    async encrypt(plaintext, binding) {
      registerSecret(plaintext);
      return encryptWith(keyrings.encrypt, plaintext, binding, pack);
    },

    async prepare({ connectionId, incarnation }) {
      const materials = new NodeCachingMaterialsManager({
        backingMaterials: keyrings.encrypt,
        // One cache per cipher (a process), one random partition (part of every cache key) per
        // prepare(): entries are this sealer's alone. A cache per prepare() would leave one
        // self-rescheduling eviction timer per call for the life of the process
        // (get_local_cryptographic_materials_cache.js), a leak in a long-lived container.
        cache: preparedCache,
        partition: randomBytes(32).toString("base64"),
        maxAge: PREPARED_SEALER_TTL_MS,
      });
      // Cacheability and the cache key, from @aws-crypto/cache-material 5.0.2,
      // build/module/src/caching_cryptographic_materials_decorators.js (getEncryptionMaterials) and
      // build/module/src/build_cryptographic_materials_cache_key_helpers.js
      // (buildEncryptionMaterialCacheKey): materials are cached only when the request carries a
      // plaintextLength (the SDK sets it for string and Uint8Array plaintexts,
      // @aws-crypto/encrypt-node build/module/src/encrypt.js) and the suite is cacheSafe (ours is,
      // @aws-crypto/material-management build/module/src/node_algorithms.js); the key is
      // SHA-512(SHA-512(partition), suite ID, SHA-512(serialized encryption context)), so each
      // kind's entry is found only by a message with exactly that context. The cached materials
      // carry their context into the header, so a looser key would seal with the wrong binding.
      // The cached materials hold the data key already wrapped, so seal() needs neither KMS nor,
      // with the hierarchical keyring, the branch key (whose own cache may expire in between).
      const warmUp = (kind: TokenKind) =>
        encryptWith(materials, WARM_UP_PLAINTEXT, { connectionId, incarnation, kind }, pack);
      if (keyrings.sharesBranchKey) {
        // One after the other: the hierarchical keyring does not join concurrent loads of a branch
        // key it has not cached, so two warm-ups at once would load it twice. Each costs
        // microseconds once it is loaded.
        for (const kind of TOKEN_KINDS) await warmUp(kind);
      } else {
        await Promise.all(TOKEN_KINDS.map(warmUp));
      }
      return {
        async seal(plaintext, kind) {
          registerSecret(plaintext);
          return encryptWith(materials, plaintext, { connectionId, incarnation, kind }, pack);
        },
      };
    },

    async decrypt(ciphertext, binding) {
      const message = Buffer.from(ciphertext, "base64");
      if (!keyrings.sharesBranchKey && sealedUnderBranchKey(message)) {
        // Not a token that fails to decrypt (which would mark the chain broken): this process
        // lacks the key store settings, and every token sealed since the stack set them is like it.
        throw new ConfigurationError(
          `Stored token of ${describeBinding(binding)} is sealed under the stack's branch key: set ` +
            "BRANCH_KEY_STORE_TABLE_NAME and BRANCH_KEY_ID (the stack's outputs) beside KMS_KEY_ARN",
        );
      }
      let plaintext: string;
      try {
        if (!hasOurSuite(message)) {
          throw new TokenDecryptError(
            `Stored token of ${describeBinding(binding)} is not sealed with the broker's algorithm suite`,
          );
        }
        const { plaintext: bytes, messageHeader } = await sdk.decrypt(keyrings.decrypt, message);
        // The SDK authenticates whatever context the message carries; it cannot know which one
        // we expect. Without this check a ciphertext copied to another item would decrypt there.
        if (!contextMatches(messageHeader.encryptionContext, binding)) {
          throw new TokenDecryptError(
            `Token does not belong to ${describeBinding(binding)}: encryption context differs`,
          );
        }
        plaintext = unpackToken(bytes);
      } catch (error) {
        // ConfigurationError: a token packed by a newer release (unpackToken), not a bad token.
        if (error instanceof TokenDecryptError || error instanceof ConfigurationError) throw error;
        if (keyServiceFailed(error)) {
          throw new EncryptionUnavailable(
            `KMS did not open the data key of ${describeBinding(binding)}'s token; the token is not at fault`,
            { cause: error },
          );
        }
        throw new TokenDecryptError(`Stored token of ${describeBinding(binding)} did not decrypt`, {
          cause: error,
        });
      }
      registerSecret(plaintext);
      return plaintext;
    },
  };
}

/**
 * Whether the SDK's error is KMS failing rather than the message being bad. The KMS keyring
 * flattens its KMS errors into one message (kms_keyring.js: "… one or more KMS CMKs had an
 * error", each error's stack after it); only InvalidCiphertextException and IncorrectKeyException
 * say the data key itself is wrong. Anything else (throttling, no answer, access denied) leaves the
 * token untouched: a warm container's branch key cannot stand in for a probe of the KMS keyring
 * that opens tokens sealed before the branch key.
 */
function keyServiceFailed(error: unknown): boolean {
  const message = error instanceof Error ? error.message : "";
  return (
    message.includes("one or more KMS CMKs had an error") &&
    !/InvalidCiphertextException|IncorrectKeyException/.test(message)
  );
}

/**
 * The hierarchical keyring's provider ID, which its encrypted data keys carry in the message
 * header (AWS Encryption SDK message format; @aws-crypto/kms-keyring-node).
 */
const BRANCH_KEY_PROVIDER_ID = "aws-kms-hierarchy";

/** The Encryption SDK's own header parser, as its decrypt uses it (@aws-crypto/decrypt-node). */
const { deserializeMessageHeader } = deserializeFactory(
  (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"),
  NodeAlgorithmSuite,
);

/**
 * Whether a message's header holds a data key of the hierarchical keyring (one that comes from a
 * branch key). Only the encrypted data keys' provider IDs count: a connection ID or any other
 * context value that happens to spell the provider ID does not. A header that does not parse is
 * not one: decrypt then refuses it as the token it is.
 */
function sealedUnderBranchKey(message: Buffer): boolean {
  try {
    const header = deserializeMessageHeader(message);
    return (
      header !== false &&
      header.messageHeader.encryptedDataKeys.some((key) => key.providerId === BRANCH_KEY_PROVIDER_ID)
    );
  } catch {
    return false;
  }
}

/** The first byte of a message in format version 2, the format of committing suites. */
const MESSAGE_FORMAT_V2 = 0x02;

/**
 * Whether a message is in format version 2 and names {@link SUITE_ID} right after the version
 * byte (AWS Encryption SDK message format, header structure). Only such messages reach the SDK.
 * A signed message, for instance, is refused here, before its signature is checked: the bundles
 * leave the ECDSA code out (lib/crypto/asn1-unsupported.ts). The broker has only ever written
 * this suite.
 */
function hasOurSuite(message: Buffer): boolean {
  return message.length >= 3 && message[0] === MESSAGE_FORMAT_V2 && message.readUInt16BE(1) === SUITE_ID;
}

/**
 * Entries the prepared-key cache holds (two per prepare()). A prepared entry is evicted early
 * only after this many newer ones, i.e. 5,000 prepare() calls in one process between a chain's
 * prepare and its seal, which comes within one token call (seconds); a process runs a handful
 * of chains at once. Expired entries (and their zeroed keys) are pruned every minute.
 */
const PREPARED_CACHE_CAPACITY = 10_000;

/** Sealing it caches a data key for its context: no token, and zero bytes off the key's budget. */
const WARM_UP_PLAINTEXT = "";

/**
 * `TOKEN_PACKING`: on unless `off`.
 * @throws ConfigurationError for any other value
 */
function packingFrom(value: string | undefined): boolean {
  if (value === undefined || value === "on") return true;
  if (value === "off") return false;
  throw new ConfigurationError(`TOKEN_PACKING must be "on" or "off", got "${value}"`);
}

async function encryptWith(
  materials: KeyringNode | NodeMaterialsManager,
  plaintext: string,
  binding: TokenBinding,
  pack: boolean,
): Promise<string> {
  const { result } = await sdk.encrypt(
    materials,
    pack ? packToken(plaintext) : Buffer.from(plaintext, "utf8"),
    {
      suiteId: SUITE_ID,
      encryptionContext: contextFor(binding),
    },
  );
  return result.toString("base64");
}

/** What seals new tokens and what opens stored ones. */
interface Keyrings {
  readonly encrypt: KeyringNode;
  readonly decrypt: KeyringNode;
  /** The hierarchical keyring: every message's data key comes from one cached branch key. */
  readonly sharesBranchKey: boolean;
}

function buildKeyrings(env: TokenCipherEnv, deps: TokenCipherDeps): Keyrings {
  const kmsKeyArn = nonEmpty(env.KMS_KEY_ARN);
  const localKey = nonEmpty(env.LOCAL_ENCRYPTION_KEY);
  const branchKeyTable = nonEmpty(env.BRANCH_KEY_STORE_TABLE_NAME);
  const branchKeyId = nonEmpty(env.BRANCH_KEY_ID);

  if (kmsKeyArn !== undefined && localKey !== undefined) {
    throw new ConfigurationError(
      "Both KMS_KEY_ARN and LOCAL_ENCRYPTION_KEY are set; set exactly one (KMS in AWS, the local key only for local runs)",
    );
  }
  if ((branchKeyTable === undefined) !== (branchKeyId === undefined)) {
    throw new ConfigurationError(
      "Set both BRANCH_KEY_STORE_TABLE_NAME and BRANCH_KEY_ID for the branch key store, or neither",
    );
  }
  if (branchKeyTable !== undefined && kmsKeyArn === undefined) {
    throw new ConfigurationError(
      "BRANCH_KEY_STORE_TABLE_NAME needs KMS_KEY_ARN, the KMS key that wraps the branch keys",
    );
  }
  if (kmsKeyArn !== undefined) {
    let kms: KeyringNode;
    try {
      kms = new KmsKeyringNode({ generatorKeyId: kmsKeyArn, clientProvider: deps.kmsClientProvider });
    } catch (error) {
      throw new ConfigurationError("KMS_KEY_ARN is not a valid KMS key identifier", { cause: error });
    }
    if (branchKeyTable === undefined || branchKeyId === undefined) {
      return { encrypt: kms, decrypt: kms, sharesBranchKey: false };
    }
    const hierarchical = hierarchicalKeyring(branchKeyTable, branchKeyId, kmsKeyArn, deps);
    // Migration: tokens sealed before the key store was set name the KMS key in their message
    // (provider ID aws-kms) and keep opening with it; each keyring skips, without a network call,
    // a message whose encrypted data key is not its own. New tokens get only the hierarchical
    // keyring: a KMS keyring beside it on encrypt would call KMS for every message again.
    return {
      encrypt: hierarchical,
      decrypt: new MultiKeyringNode({ children: [hierarchical, kms] }),
      sharesBranchKey: true,
    };
  }
  if (localKey !== undefined) {
    const local = new RawAesKeyringNode({
      keyNamespace: LOCAL_KEY_NAMESPACE,
      keyName: LOCAL_KEY_NAME,
      unencryptedMasterKey: decodeLocalKey(localKey),
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    });
    return { encrypt: local, decrypt: local, sharesBranchKey: false };
  }
  throw new ConfigurationError(
    "Neither KMS_KEY_ARN nor LOCAL_ENCRYPTION_KEY is set; tokens cannot be encrypted at rest without one",
  );
}

/**
 * The hierarchical keyring over the stack's one branch key (why one: branch-key-store.ts). A
 * branch key is loaded (GetItem, KMS Decrypt) on a cache miss and kept for
 * {@link BRANCH_KEY_CACHE_TTL_SECONDS}: the active version for encrypting, and each version a
 * message names for decrypting, as separate entries.
 */
function hierarchicalKeyring(
  tableName: string,
  branchKeyId: string,
  kmsKeyArn: string,
  deps: TokenCipherDeps,
): KeyringNode {
  try {
    const { keyStore } = new BranchKeyStore({
      tableName,
      kmsKeyArn,
      dynamo: deps.branchKeyDynamoClient,
      kms: deps.branchKeyKmsClient,
    });
    return new KmsHierarchicalKeyRingNode({
      branchKeyId,
      keyStore,
      cacheLimitTtl: BRANCH_KEY_CACHE_TTL_SECONDS,
      // The active version and a few versions still named by stored tokens after rotations.
      maxCacheSize: BRANCH_KEY_CACHE_ENTRIES,
    });
  } catch (error) {
    throw new ConfigurationError(
      "The branch key store cannot use KMS_KEY_ARN: it needs a key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias",
      { cause: error },
    );
  }
}

/** Branch key cache entries: one active version plus versions stored tokens still name. */
const BRANCH_KEY_CACHE_ENTRIES = 16;

/** Identifiers only: connection, incarnation, kind; never the token. */
function describeBinding({ connectionId, kind, incarnation }: TokenBinding): string {
  const generation = incarnation === undefined ? "no incarnation" : `incarnation ${incarnation}`;
  return `connection ${connectionId} (${generation}, ${kind} token)`;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

function contextFor({ connectionId, kind, incarnation }: TokenBinding): EncryptionContext {
  const context: EncryptionContext = { app: ENCRYPTION_CONTEXT_APP, connectionId, kind };
  // Tokens written before incarnations carry none and must keep decrypting (legacy binding).
  if (incarnation !== undefined) context.incarnation = incarnation;
  return context;
}

/**
 * Exactly the expected keys with the expected values: an extra key means someone else's message,
 * and a missing or extra incarnation means another generation of the connection.
 */
function contextMatches(actual: EncryptionContext, binding: TokenBinding): boolean {
  const expected = contextFor(binding);
  const actualKeys = Object.keys(actual);
  return (
    actualKeys.length === Object.keys(expected).length &&
    actualKeys.every((key) => Object.hasOwn(expected, key) && actual[key] === expected[key])
  );
}
