import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  type EncryptionContext,
  type KeyringNode,
  KmsKeyringNode,
  type KmsNodeClientSupplier,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from "@aws-crypto/client-node";
import { ConfigurationError, TokenDecryptError } from "../errors.js";
import { registerSecret } from "../log/redactor.js";
import { decodeLocalKey } from "./local-key.js";

/** Which of a chain's two tokens a ciphertext holds. */
export type TokenKind = "access" | "refresh";

/** What a ciphertext is bound to: it decrypts for this connection and kind only (design invariant 9). */
export interface TokenBinding {
  connectionId: string;
  kind: TokenKind;
}

/** Encrypts tokens at rest, each bound to its chain and kind through the encryption context. */
export interface TokenCipher {
  /** base64 ciphertext bound to the connection and token kind via the encryption context */
  encrypt(plaintext: string, binding: TokenBinding): Promise<string>;
  /**
   * throws TokenDecryptError (lib/errors.ts) on any failure, including a context that does not match
   * binding; never includes plaintext or key material in the message
   */
  decrypt(ciphertext: string, binding: TokenBinding): Promise<string>;
}

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

  return {
    async encrypt(plaintext, binding) {
      registerSecret(plaintext);
      const { result } = await sdk.encrypt(keyring, plaintext, {
        suiteId: SUITE_ID,
        encryptionContext: contextFor(binding),
      });
      return result.toString("base64");
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
            `Token does not belong to connection ${binding.connectionId} (${binding.kind} token): encryption context differs`,
          );
        }
        plaintext = bytes.toString("utf8");
      } catch (error) {
        if (error instanceof TokenDecryptError) throw error;
        throw new TokenDecryptError(
          `Stored ${binding.kind} token of connection ${binding.connectionId} did not decrypt`,
          { cause: error },
        );
      }
      registerSecret(plaintext);
      return plaintext;
    },
  };
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

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

function contextFor(binding: TokenBinding): EncryptionContext {
  return { app: ENCRYPTION_CONTEXT_APP, connectionId: binding.connectionId, kind: binding.kind };
}

/** Exactly our three keys with the expected values: an extra key means someone else's message. */
function contextMatches(actual: EncryptionContext, binding: TokenBinding): boolean {
  const expected = contextFor(binding);
  const actualKeys = Object.keys(actual);
  return (
    actualKeys.length === Object.keys(expected).length &&
    actualKeys.every((key) => Object.hasOwn(expected, key) && actual[key] === expected[key])
  );
}
