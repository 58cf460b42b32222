import { randomBytes } from "node:crypto";
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  type EncryptionContext,
  getLocalCryptographicMaterialsCache,
  type KeyringNode,
  KmsKeyringNode,
  type KmsNodeClientSupplier,
  NodeCachingMaterialsManager,
  type NodeMaterialsManager,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from "@aws-crypto/client-node";
import { ConfigurationError, TokenDecryptError } from "../errors.js";
import { registerSecret } from "../log/redactor.js";
import { decodeLocalKey } from "./local-key.js";

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
   * context; in AWS each call asks KMS for a data key (GenerateDataKey), so it fails when KMS does
   */
  encrypt(plaintext: string, binding: TokenBinding): Promise<string>;
  /**
   * throws TokenDecryptError (lib/errors.ts) on any failure, including a context that is not
   * exactly the one binding gives (another connection, kind or incarnation, or an incarnation on
   * one side only); never includes plaintext or key material in the message
   */
  decrypt(ciphertext: string, binding: TokenBinding): Promise<string>;
  /**
   * Fetches the data keys for this chain's tokens now (KMS GenerateDataKey in AWS), so that sealing
   * the tokens Exact returns needs no network call. Call it before the token call; throws what
   * encrypt throws.
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

/** Environment read by {@link createTokenCipher}; exactly one of the two must be set. */
export interface TokenCipherEnv {
  /** KMS key (ARN) that generates and wraps each data key; used in AWS. */
  KMS_KEY_ARN?: string;
  /** base64 of a 32-byte AES key for a raw keyring; used locally (`npm start`, tests). */
  LOCAL_ENCRYPTION_KEY?: string;
}

/** Injected I/O for {@link createTokenCipher}. */
export interface TokenCipherDeps {
  /**
   * Gives the KMS client for a region (the keyring passes the key ARN's region).
   * @default the Encryption SDK's own per-region cached KMS clients
   */
  kmsClientProvider?: KmsNodeClientSupplier;
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

// One SDK client per process: it holds no key material, only the policy.
const sdk = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);

/**
 * Creates a {@link TokenCipher}: a KMS keyring when `KMS_KEY_ARN` is set, a raw AES keyring from
 * `LOCAL_ENCRYPTION_KEY` otherwise. The keyring is built once here, so configuration errors
 * surface at start and warm invocations reuse it.
 *
 * Every plaintext that passes through the cipher is registered with the log redactor: whatever
 * it is, it is a token and must never reach a log line.
 *
 * @throws ConfigurationError when both or neither variable is set, or the local key is not
 *   base64 of exactly 32 bytes, or the KMS key identifier is malformed; the key is never echoed.
 */
export function createTokenCipher(env: TokenCipherEnv, deps: TokenCipherDeps = {}): TokenCipher {
  const keyring = buildKeyring(env, deps);
  const preparedCache = getLocalCryptographicMaterialsCache(PREPARED_CACHE_CAPACITY);

  return {
    async encrypt(plaintext, binding) {
      registerSecret(plaintext);
      return encryptWith(keyring, plaintext, binding);
    },

    async prepare({ connectionId, incarnation }) {
      const materials = new NodeCachingMaterialsManager({
        backingMaterials: keyring,
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
      await Promise.all(
        TOKEN_KINDS.map((kind) =>
          encryptWith(materials, WARM_UP_PLAINTEXT, { connectionId, incarnation, kind }),
        ),
      );
      return {
        async seal(plaintext, kind) {
          registerSecret(plaintext);
          return encryptWith(materials, plaintext, { connectionId, incarnation, kind });
        },
      };
    },

    async decrypt(ciphertext, binding) {
      let plaintext: string;
      try {
        const { plaintext: bytes, messageHeader } = await sdk.decrypt(
          keyring,
          Buffer.from(ciphertext, "base64"),
        );
        // The SDK authenticates whatever context the message carries; it cannot know which one
        // we expect. Without this check a ciphertext copied to another item would decrypt there.
        if (!contextMatches(messageHeader.encryptionContext, binding)) {
          throw new TokenDecryptError(
            `Token does not belong to ${describeBinding(binding)}: encryption context differs`,
          );
        }
        plaintext = bytes.toString("utf8");
      } catch (error) {
        if (error instanceof TokenDecryptError) throw error;
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
 * Entries the prepared-key cache holds (two per prepare()). A prepared entry is evicted early
 * only after this many newer ones, i.e. 5,000 prepare() calls in one process between a chain's
 * prepare and its seal, which comes within one token call (seconds); a process runs a handful
 * of chains at once. Expired entries (and their zeroed keys) are pruned every minute.
 */
const PREPARED_CACHE_CAPACITY = 10_000;

/** Sealing it caches a data key for its context: no token, and zero bytes off the key's budget. */
const WARM_UP_PLAINTEXT = "";

async function encryptWith(
  materials: KeyringNode | NodeMaterialsManager,
  plaintext: string,
  binding: TokenBinding,
): Promise<string> {
  const { result } = await sdk.encrypt(materials, plaintext, {
    suiteId: SUITE_ID,
    encryptionContext: contextFor(binding),
  });
  return result.toString("base64");
}

function buildKeyring(env: TokenCipherEnv, deps: TokenCipherDeps): KeyringNode {
  const kmsKeyArn = nonEmpty(env.KMS_KEY_ARN);
  const localKey = nonEmpty(env.LOCAL_ENCRYPTION_KEY);

  if (kmsKeyArn !== undefined && localKey !== undefined) {
    throw new ConfigurationError(
      "Both KMS_KEY_ARN and LOCAL_ENCRYPTION_KEY are set; set exactly one (KMS in AWS, the local key only for local runs)",
    );
  }
  if (kmsKeyArn !== undefined) {
    try {
      return new KmsKeyringNode({ generatorKeyId: kmsKeyArn, clientProvider: deps.kmsClientProvider });
    } catch (error) {
      throw new ConfigurationError("KMS_KEY_ARN is not a valid KMS key identifier", { cause: error });
    }
  }
  if (localKey !== undefined) {
    return new RawAesKeyringNode({
      keyNamespace: LOCAL_KEY_NAMESPACE,
      keyName: LOCAL_KEY_NAME,
      unencryptedMasterKey: decodeLocalKey(localKey),
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    });
  }
  throw new ConfigurationError(
    "Neither KMS_KEY_ARN nor LOCAL_ENCRYPTION_KEY is set; tokens cannot be encrypted at rest without one",
  );
}

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
