import { buildEncrypt } from "@aws-crypto/encrypt-node";
import { AlgorithmSuiteIdentifier, CommitmentPolicy } from "@aws-crypto/material-management-node";
import { RawAesKeyringNode, RawAesWrappingSuiteIdentifier } from "@aws-crypto/raw-aes-keyring-node";
import { describe, expect, it } from "vitest";
import { createTokenCipher, ENCRYPTION_CONTEXT_APP } from "../../lib/crypto/token-cipher.js";
import { packToken, unpackToken } from "../../lib/crypto/token-packing.js";
import { newAccessToken, newRefreshToken, TokenStyle } from "../../lib/sim/tokens.js";

const LOCAL_KEY = Buffer.alloc(32, 7).toString("base64");
const binding = { connectionId: "acme", kind: "access", incarnation: "inc-1" } as const;

describe("token packing (what the cipher encrypts for a token)", () => {
  it("takes about a quarter off Exact's long tokens, and gives them back byte for byte", () => {
    for (const token of [newAccessToken(TokenStyle.Long), newRefreshToken(TokenStyle.Long)]) {
      const packed = packToken(token);
      expect(packed.length).toBeLessThan(0.8 * token.length);
      expect(unpackToken(packed)).toBe(token);
    }
  });

  it("keeps a token that does not compress as its UTF-8 bytes", () => {
    const token = "a!Z";
    expect(packToken(token)).toEqual(Buffer.from(token, "utf8"));
    expect(unpackToken(packToken(token))).toBe(token);
  });

  it("packs a string starting with NUL whatever the sizes, so it never reads back as packed", () => {
    const odd = "\u0000\u0001x";
    expect(unpackToken(packToken(odd))).toBe(odd);
  });

  it("refuses an unknown packing format", () => {
    expect(() => unpackToken(Buffer.from([0, 9, 1, 2]))).toThrow(/unknown token packing format 9/);
  });
});

describe("the cipher with packing", () => {
  const cipher = createTokenCipher({ LOCAL_ENCRYPTION_KEY: LOCAL_KEY });

  it("seals a long token into its packed size plus the SDK's fixed header and frame", async () => {
    const token = newAccessToken(TokenStyle.Long);
    const sealed = Buffer.from(await cipher.encrypt(token, binding), "base64");
    const empty = Buffer.from(await cipher.encrypt("", binding), "base64");

    expect(sealed.length - empty.length).toBe(packToken(token).length);
    expect(sealed.length - empty.length).toBeLessThan(0.8 * token.length);
    expect(await cipher.decrypt(sealed.toString("base64"), binding)).toBe(token);
  });

  it("seals unpacked with TOKEN_PACKING=off (the first deploy of an upgrade), and opens both kinds", async () => {
    const unpacking = createTokenCipher({ LOCAL_ENCRYPTION_KEY: LOCAL_KEY, TOKEN_PACKING: "off" });
    const token = newAccessToken(TokenStyle.Long);
    const sealed = Buffer.from(await unpacking.encrypt(token, binding), "base64");
    const empty = Buffer.from(await unpacking.encrypt("", binding), "base64");

    expect(sealed.length - empty.length).toBe(Buffer.byteLength(token));
    expect(await cipher.decrypt(sealed.toString("base64"), binding)).toBe(token);
    expect(await unpacking.decrypt(await cipher.encrypt(token, binding), binding)).toBe(token);
  });

  it("refuses a TOKEN_PACKING other than on or off, at start", () => {
    expect(() => createTokenCipher({ LOCAL_ENCRYPTION_KEY: LOCAL_KEY, TOKEN_PACKING: "yes" })).toThrow(
      'TOKEN_PACKING must be "on" or "off", got "yes"',
    );
  });

  it("still opens a token sealed before packing (its plaintext the token's UTF-8)", async () => {
    const token = newRefreshToken(TokenStyle.Long);
    // As the cipher sealed tokens before: the same keyring and context, the token's UTF-8 bytes.
    const keyring = new RawAesKeyringNode({
      keyNamespace: "exact-token-broker",
      keyName: "local",
      unencryptedMasterKey: new Uint8Array(Buffer.from(LOCAL_KEY, "base64")),
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    });
    const { encrypt } = buildEncrypt(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
    const { result } = await encrypt(keyring, Buffer.from(token, "utf8"), {
      suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
      encryptionContext: { app: ENCRYPTION_CONTEXT_APP, ...binding, kind: "refresh" },
    });

    expect(await cipher.decrypt(result.toString("base64"), { ...binding, kind: "refresh" })).toBe(token);
  });
});
