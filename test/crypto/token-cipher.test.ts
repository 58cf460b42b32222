import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from "@aws-crypto/client-node";
import { describe, expect, it } from "vitest";
import { decodeLocalKey, generateLocalKey } from "../../lib/crypto/local-key.js";
import {
  type ChainBinding,
  createTokenCipher,
  ENCRYPTION_CONTEXT_APP,
  type TokenBinding,
  type TokenKind,
} from "../../lib/crypto/token-cipher.js";
import { ConfigurationError, TokenDecryptError } from "../../lib/errors.js";
import { REDACTED, redactString } from "../../lib/log/redactor.js";

const TOKEN = "gAAAAA!exampleRefreshTokenWith!BangsAndMore-chars_0123456789.~+/=";
const BINDING: TokenBinding = { connectionId: "conn-1", kind: "refresh" };
const INCARNATION_A: TokenBinding = { connectionId: "conn-1", kind: "refresh", incarnation: "inc-A" };
const INCARNATION_B: TokenBinding = { connectionId: "conn-1", kind: "refresh", incarnation: "inc-B" };
const LEGACY: TokenBinding = BINDING;

/**
 * Written by the cipher before incarnations existed (context `{ app, connectionId, kind }`), with
 * a fixed test-only key: what a DynamoDB item from that time holds.
 */
const LEGACY_ITEM = {
  localKey: Buffer.from("legacy-fixture-key-32-bytes-long").toString("base64"),
  binding: { connectionId: "conn-legacy", kind: "refresh" } satisfies TokenBinding,
  plaintext: "legacy-token-written-before-incarnations",
  ciphertext:
    "AgR4RqLEDFaRaWQ3qXerfhl34f9ltC6Ab8pI7wm99IJUvBAARQADAANhcHAAEmV4YWN0LXRva2VuLWJyb2tlcgAMY29ubmVjdGlvbklkAAtjb25uLWxlZ2FjeQAEa2luZAAHcmVmcmVzaAABABJleGFjdC10b2tlbi1icm9rZXIAGWxvY2FsAAAAgAAAAAxYvTC3dpjoIrzCAAIAMIMa9hWcieh2+Kg5c7v2nl72Oet4qG3mj+d1PRltU/u9oVEMC8uBtVQK4eRO0E8jCwIAABAARUVp1OWBKUjHA3EG+N4z2LfPDJB1GQh4zbA0xoc+MbEBKMioVHduGCDmPJIsW+ji/////wAAAAEAAAAAAAAAAAAAAAEAAAAozZwGYA7eyTYYj8MBNKU+wyVm/qepXCB0gd1ouFg3sBzlFwKfOjdrf/GsGJPn8EdMhOVblTD8fh4=",
};

async function decryptError(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected decrypt to fail");
    },
    (error: unknown) => error,
  );
}

describe("createTokenCipher", () => {
  describe("with a local key", () => {
    const cipher = createTokenCipher({ LOCAL_ENCRYPTION_KEY: generateLocalKey() });

    it("decrypts what it encrypted for the same binding", async () => {
      const ciphertext = await cipher.encrypt(TOKEN, BINDING);

      expect(ciphertext).toMatch(/^[A-Za-z0-9+/]+=*$/);
      expect(ciphertext).not.toContain(TOKEN);
      expect(await cipher.decrypt(ciphertext, BINDING)).toBe(TOKEN);
    });

    it("gives a different ciphertext each time (fresh data key)", async () => {
      const first = await cipher.encrypt(TOKEN, BINDING);
      const second = await cipher.encrypt(TOKEN, BINDING);

      expect(first).not.toBe(second);
    });

    it.each<[string, TokenBinding]>([
      ["another connection", { connectionId: "conn-2", kind: "refresh" }],
      ["another token kind", { connectionId: "conn-1", kind: "access" }],
      ["a connection ID that only shares a prefix", { connectionId: "conn-10", kind: "refresh" }],
    ])("refuses a ciphertext copied to %s", async (_label, otherBinding) => {
      const ciphertext = await cipher.encrypt(TOKEN, BINDING);

      const error = await decryptError(cipher.decrypt(ciphertext, otherBinding));

      expect(error).toBeInstanceOf(TokenDecryptError);
      expect((error as Error).name).toBe("TokenDecryptError");
      expect((error as Error).message).toContain(otherBinding.connectionId);
      expect((error as Error).message).not.toContain(TOKEN);
    });

    it("refuses a tampered ciphertext", async () => {
      const bytes = Buffer.from(await cipher.encrypt(TOKEN, BINDING), "base64");
      // Flip one bit in the encrypted body, well past the header.
      const index = bytes.length - 40;
      bytes.writeUInt8((bytes.readUInt8(index) ^ 0x01) & 0xff, index);

      const error = await decryptError(cipher.decrypt(bytes.toString("base64"), BINDING));

      expect(error).toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).not.toContain(TOKEN);
    });

    it.each([
      ["garbage", "bm90IGEgY2lwaGVydGV4dA=="],
      ["an empty string", ""],
      ["truncated", "AgV4"],
    ])("refuses %s as ciphertext", async (_label, ciphertext) => {
      const error = await decryptError(cipher.decrypt(ciphertext, BINDING));

      expect(error).toBeInstanceOf(TokenDecryptError);
    });

    it("registers the tokens it handles with the log redactor", async () => {
      // No "!" in it, so only the registry (not the token shape) can catch it.
      const plainLookingToken = "plainLookingTokenWithoutBang0123456789";
      const ciphertext = await cipher.encrypt(plainLookingToken, BINDING);
      await cipher.decrypt(ciphertext, BINDING);

      expect(redactString(`token=${plainLookingToken}`)).toBe(`token=${REDACTED}`);
    });

    it("refuses a message of another algorithm suite (a signed one) before the SDK reads it", async () => {
      const key = generateLocalKey();
      const signed = await buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT).encrypt(
        new RawAesKeyringNode({
          keyNamespace: "exact-token-broker",
          keyName: "local",
          unencryptedMasterKey: decodeLocalKey(key),
          wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
        }),
        TOKEN,
        {
          suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
          encryptionContext: { app: ENCRYPTION_CONTEXT_APP, connectionId: "conn-1", kind: "refresh" },
        },
      );

      const error = await decryptError(
        createTokenCipher({ LOCAL_ENCRYPTION_KEY: key }).decrypt(signed.result.toString("base64"), BINDING),
      );

      expect(error).toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).toContain("is not sealed with the broker's algorithm suite");
    });

    it("refuses a ciphertext made with another key", async () => {
      const other = createTokenCipher({ LOCAL_ENCRYPTION_KEY: generateLocalKey() });
      const ciphertext = await other.encrypt(TOKEN, BINDING);

      const error = await decryptError(cipher.decrypt(ciphertext, BINDING));

      expect(error).toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).not.toContain(TOKEN);
    });
  });

  describe("incarnations", () => {
    const cipher = createTokenCipher({ LOCAL_ENCRYPTION_KEY: generateLocalKey() });

    it.each<[string, TokenBinding]>([
      ["an incarnation", INCARNATION_A],
      ["no incarnation (legacy)", LEGACY],
    ])("decrypts what it encrypted for %s", async (_label, binding) => {
      const ciphertext = await cipher.encrypt(TOKEN, binding);

      expect(await cipher.decrypt(ciphertext, binding)).toBe(TOKEN);
    });

    it.each<[string, TokenBinding, TokenBinding]>([
      ["incarnation A for incarnation B", INCARNATION_A, INCARNATION_B],
      ["incarnation B for incarnation A", INCARNATION_B, INCARNATION_A],
      ["incarnation A for the legacy binding", INCARNATION_A, LEGACY],
      ["the legacy binding for incarnation A", LEGACY, INCARNATION_A],
    ])("refuses a ciphertext made for %s", async (_label, writtenFor, readAs) => {
      const ciphertext = await cipher.encrypt(TOKEN, writtenFor);

      const error = await decryptError(cipher.decrypt(ciphertext, readAs));

      expect(error).toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).toMatch(/encryption context differs/);
      expect((error as Error).message).not.toContain(TOKEN);
    });

    it("keeps decrypting a token written before incarnations existed", async () => {
      const legacyCipher = createTokenCipher({ LOCAL_ENCRYPTION_KEY: LEGACY_ITEM.localKey });

      expect(await legacyCipher.decrypt(LEGACY_ITEM.ciphertext, LEGACY_ITEM.binding)).toBe(
        LEGACY_ITEM.plaintext,
      );
      const error = await decryptError(
        legacyCipher.decrypt(LEGACY_ITEM.ciphertext, { ...LEGACY_ITEM.binding, incarnation: "inc-A" }),
      );
      expect(error).toBeInstanceOf(TokenDecryptError);
    });
  });

  describe("prepare and seal", () => {
    const cipher = createTokenCipher({ LOCAL_ENCRYPTION_KEY: generateLocalKey() });
    const chain: ChainBinding = { connectionId: "conn-1", incarnation: "inc-A" };

    it.each<TokenKind>(["access", "refresh"])(
      "seals the %s token so that the ordinary decrypt opens it",
      async (kind) => {
        const sealer = await cipher.prepare(chain);

        const sealed = await sealer.seal(TOKEN, kind);

        expect(sealed).not.toContain(TOKEN);
        expect(await cipher.decrypt(sealed, { ...chain, kind })).toBe(TOKEN);
      },
    );

    it.each<[string, ChainBinding, TokenBinding]>([
      ["another kind", chain, { ...chain, kind: "access" }],
      ["another incarnation", chain, { ...chain, kind: "refresh", incarnation: "inc-B" }],
      ["the legacy binding", chain, { connectionId: "conn-1", kind: "refresh" }],
      ["incarnation A, when sealed for a chain without one", { connectionId: "conn-1" }, INCARNATION_A],
      ["another connection", chain, { ...chain, connectionId: "conn-2", kind: "refresh" }],
    ])(
      "binds a sealed refresh token like encrypt: it does not decrypt for %s",
      async (_label, sealedFor, readAs) => {
        const sealer = await cipher.prepare(sealedFor);
        const sealed = await sealer.seal(TOKEN, "refresh");

        const error = await decryptError(cipher.decrypt(sealed, readAs));

        expect(error).toBeInstanceOf(TokenDecryptError);
      },
    );

    it("seals for a chain without incarnation under the legacy context", async () => {
      const sealer = await cipher.prepare({ connectionId: "conn-1" });

      const sealed = await sealer.seal(TOKEN, "refresh");

      expect(await cipher.decrypt(sealed, LEGACY)).toBe(TOKEN);
    });

    it("gives a different ciphertext on each seal", async () => {
      const sealer = await cipher.prepare(chain);

      const first = await sealer.seal(TOKEN, "refresh");
      const second = await sealer.seal(TOKEN, "refresh");

      expect(first).not.toBe(second);
    });

    it("registers the tokens it seals with the log redactor", async () => {
      const sealer = await cipher.prepare(chain);
      const plainLookingToken = "plainLookingSealedTokenWithoutBang0123456789";

      await sealer.seal(plainLookingToken, "access");

      expect(redactString(`token=${plainLookingToken}`)).toBe(`token=${REDACTED}`);
    });
  });

  describe("configuration", () => {
    const key = generateLocalKey();
    const arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    it.each<[string, Record<string, string | undefined>, RegExp]>([
      [
        "both are set",
        { KMS_KEY_ARN: arn, LOCAL_ENCRYPTION_KEY: key },
        /Both KMS_KEY_ARN and LOCAL_ENCRYPTION_KEY/,
      ],
      ["neither is set", {}, /Neither KMS_KEY_ARN nor LOCAL_ENCRYPTION_KEY/],
      ["both are empty", { KMS_KEY_ARN: "", LOCAL_ENCRYPTION_KEY: " " }, /Neither/],
      [
        "the key is 16 bytes",
        { LOCAL_ENCRYPTION_KEY: Buffer.alloc(16, 7).toString("base64") },
        /got 16 bytes/,
      ],
      [
        "the key is 33 bytes",
        { LOCAL_ENCRYPTION_KEY: Buffer.alloc(33, 7).toString("base64") },
        /got 33 bytes/,
      ],
      [
        "the key is not base64",
        { LOCAL_ENCRYPTION_KEY: "this is not base64 at all!!!!!!!!!!!!!!!!!!" },
        /not valid base64/,
      ],
      [
        "the key is a hex string",
        { LOCAL_ENCRYPTION_KEY: "ab".repeat(32).replace("a", "_") },
        /not valid base64/,
      ],
      ["the KMS key ARN is malformed", { KMS_KEY_ARN: "arn:aws:kms:nonsense" }, /KMS_KEY_ARN is not a valid/],
    ])("throws ConfigurationError when %s", (_label, env, message) => {
      let error: unknown;
      try {
        createTokenCipher(env);
      } catch (caught) {
        error = caught;
      }

      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(message);
      const localKey = env.LOCAL_ENCRYPTION_KEY?.trim();
      if (localKey) expect((error as Error).message).not.toContain(localKey);
    });

    it("accepts a generated key with surrounding whitespace", async () => {
      const cipher = createTokenCipher({ LOCAL_ENCRYPTION_KEY: ` ${key}\n` });

      expect(await cipher.decrypt(await cipher.encrypt(TOKEN, BINDING), BINDING)).toBe(TOKEN);
    });
  });
});
