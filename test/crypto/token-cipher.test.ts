import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand, KMS, KMSClient } from "@aws-sdk/client-kms";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateLocalKey } from "../../lib/crypto/local-key.js";
import { createTokenCipher, type TokenBinding } from "../../lib/crypto/token-cipher.js";
import { ConfigurationError, TokenDecryptError } from "../../lib/errors.js";
import { REDACTED, redactString } from "../../lib/log/redactor.js";

const TOKEN = "gAAAAA!exampleRefreshTokenWith!BangsAndMore-chars_0123456789.~+/=";
const BINDING: TokenBinding = { connectionId: "conn-1", kind: "refresh" };

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

    it("refuses a ciphertext made with another key", async () => {
      const other = createTokenCipher({ LOCAL_ENCRYPTION_KEY: generateLocalKey() });
      const ciphertext = await other.encrypt(TOKEN, BINDING);

      const error = await decryptError(cipher.decrypt(ciphertext, BINDING));

      expect(error).toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).not.toContain(TOKEN);
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

  describe("with a KMS key", () => {
    const keyArn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const dataKey = Buffer.alloc(32, 0x5a);
    const wrappedDataKey = Buffer.from("fake-kms-wrapped-data-key");
    const kms = mockClient(KMSClient);
    const regions: string[] = [];
    const kmsClientProvider = (region: string) => {
      regions.push(region);
      return new KMS({ region, credentials: { accessKeyId: "test", secretAccessKey: "test" } });
    };

    beforeEach(() => {
      kms.reset();
      regions.length = 0;
      // The keyring zeroes the plaintext it receives, so every call must get a fresh copy.
      kms.on(GenerateDataKeyCommand).callsFake(() => ({
        KeyId: keyArn,
        Plaintext: new Uint8Array(dataKey),
        CiphertextBlob: new Uint8Array(wrappedDataKey),
      }));
      kms.on(DecryptCommand).callsFake(() => ({ KeyId: keyArn, Plaintext: new Uint8Array(dataKey) }));
    });

    afterEach(() => {
      kms.reset();
    });

    it("asks KMS for a data key on encrypt and to unwrap it on decrypt, with our encryption context", async () => {
      const cipher = createTokenCipher({ KMS_KEY_ARN: keyArn }, { kmsClientProvider });
      const expectedContext = { app: "exact-token-broker", connectionId: "conn-1", kind: "refresh" };

      const ciphertext = await cipher.encrypt(TOKEN, BINDING);
      const plaintext = await cipher.decrypt(ciphertext, BINDING);

      expect(plaintext).toBe(TOKEN);
      expect(regions).toEqual(["eu-west-1", "eu-west-1"]);
      const generated = kms.commandCalls(GenerateDataKeyCommand);
      expect(generated).toHaveLength(1);
      expect(generated[0]?.args[0].input).toMatchObject({
        KeyId: keyArn,
        NumberOfBytes: 32,
        EncryptionContext: expectedContext,
      });
      const decrypted = kms.commandCalls(DecryptCommand);
      expect(decrypted).toHaveLength(1);
      expect(decrypted[0]?.args[0].input).toMatchObject({
        KeyId: keyArn,
        EncryptionContext: expectedContext,
      });
      expect(Buffer.from(decrypted[0]?.args[0].input.CiphertextBlob ?? [])).toEqual(wrappedDataKey);
      expect(kms.commandCalls(EncryptCommand)).toHaveLength(0);
    });

    it("checks the binding before trusting KMS: a copied ciphertext fails even though KMS would unwrap it", async () => {
      const cipher = createTokenCipher({ KMS_KEY_ARN: keyArn }, { kmsClientProvider });
      const ciphertext = await cipher.encrypt(TOKEN, BINDING);

      const error = await decryptError(
        cipher.decrypt(ciphertext, { connectionId: "conn-2", kind: "refresh" }),
      );

      expect(error).toBeInstanceOf(TokenDecryptError);
    });

    it("turns a KMS refusal into TokenDecryptError", async () => {
      const cipher = createTokenCipher({ KMS_KEY_ARN: keyArn }, { kmsClientProvider });
      const ciphertext = await cipher.encrypt(TOKEN, BINDING);
      kms
        .on(DecryptCommand)
        .rejects(Object.assign(new Error("User is not authorized"), { name: "AccessDeniedException" }));

      const error = await decryptError(cipher.decrypt(ciphertext, BINDING));

      expect(error).toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).not.toContain(TOKEN);
    });
  });
});
