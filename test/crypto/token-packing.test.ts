import { deflateRawSync } from "node:zlib";
import { buildEncrypt } from "@aws-crypto/encrypt-node";
import { AlgorithmSuiteIdentifier, CommitmentPolicy } from "@aws-crypto/material-management-node";
import { RawAesKeyringNode, RawAesWrappingSuiteIdentifier } from "@aws-crypto/raw-aes-keyring-node";
import { describe, expect, it } from "vitest";
import { createTokenCipher, ENCRYPTION_CONTEXT_APP } from "../../lib/crypto/token-cipher.js";
import { MAX_TOKEN_BYTES, packToken, unpackToken } from "../../lib/crypto/token-packing.js";
import { ConfigurationError, TokenDecryptError } from "../../lib/errors.js";
import { newAccessToken, newRefreshToken, TokenStyle } from "../../lib/sim/tokens.js";

const LOCAL_KEY = Buffer.alloc(32, 7).toString("base64");
const binding = { connectionId: "acme", kind: "access", incarnation: "inc-1" } as const;

/** A token-like ASCII string of exactly `bytes` bytes, from repeated long tokens (it compresses). */
function tokenOfLength(bytes: number): string {
  const piece = newAccessToken(TokenStyle.Long);
  return piece.repeat(Math.ceil(bytes / piece.length)).slice(0, bytes);
}

/** Seals `plaintext` as the cipher does, bypassing packing: the bytes a newer release might write. */
async function sealRaw(plaintext: Buffer, kind: "access" | "refresh" = "access"): Promise<string> {
  const keyring = new RawAesKeyringNode({
    keyNamespace: "exact-token-broker",
    keyName: "local",
    unencryptedMasterKey: new Uint8Array(Buffer.from(LOCAL_KEY, "base64")),
    wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
  });
  const { encrypt } = buildEncrypt(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
  const { result } = await encrypt(keyring, plaintext, {
    suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
    encryptionContext: { app: ENCRYPTION_CONTEXT_APP, ...binding, kind },
  });
  return result.toString("base64");
}

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

  it("refuses an unknown packing format as a newer release's, naming only the format byte", () => {
    const secret = Buffer.from("not-to-be-echoed", "utf8");
    let thrown: unknown;
    try {
      unpackToken(Buffer.concat([Buffer.from([0, 9]), secret]));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigurationError);
    expect((thrown as Error).name).toBe("ConfigurationError");
    expect((thrown as Error).message).toMatch(/format 9\b.*newer release/);
    expect((thrown as Error).message).not.toContain("not-to-be-echoed");
  });

  it("packs a token of exactly the inflate cap, and it opens", () => {
    const token = tokenOfLength(MAX_TOKEN_BYTES);
    const packed = packToken(token);
    expect(packed.subarray(0, 2)).toEqual(Buffer.from([0, 1]));
    expect(packed.length).toBeLessThan(token.length);
    expect(unpackToken(packed)).toBe(token);
  });

  it("keeps a token just over the inflate cap as its UTF-8 bytes, so it always opens", () => {
    const token = tokenOfLength(MAX_TOKEN_BYTES + 1);
    // equals, not toEqual: a mismatch prints no 64 KiB of token-like bytes (and compares fast).
    expect(packToken(token).equals(Buffer.from(token, "utf8"))).toBe(true);
    expect(unpackToken(packToken(token))).toBe(token);
  });

  it("counts the cap in UTF-8 bytes, not characters", () => {
    const token = "\u00e9".repeat(MAX_TOKEN_BYTES / 2 + 1); // fewer characters than the cap, more bytes
    expect(token.length).toBeLessThan(MAX_TOKEN_BYTES);
    expect(packToken(token).equals(Buffer.from(token, "utf8"))).toBe(true);
    expect(unpackToken(packToken(token))).toBe(token);
  });

  it("marks a string starting with NUL over the cap without deflating it, so it still opens", () => {
    const atCap = `\u0000${tokenOfLength(MAX_TOKEN_BYTES - 1)}`;
    expect(packToken(atCap).subarray(0, 2)).toEqual(Buffer.from([0, 1]));
    expect(unpackToken(packToken(atCap))).toBe(atCap);

    const overCap = `\u0000${tokenOfLength(MAX_TOKEN_BYTES)}`;
    expect(packToken(overCap).subarray(0, 2)).toEqual(Buffer.from([0, 2]));
    expect(unpackToken(packToken(overCap))).toBe(overCap);
  });

  it("refuses a stream that inflates past the cap (the bound holds on any stream)", () => {
    const bomb = Buffer.concat([Buffer.from([0, 1]), deflateRawSync(Buffer.alloc(MAX_TOKEN_BYTES + 1, "a"))]);
    expect(() => unpackToken(bomb)).toThrow(RangeError);
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
    const sealed = await sealRaw(Buffer.from(token, "utf8"), "refresh");

    expect(await cipher.decrypt(sealed, { ...binding, kind: "refresh" })).toBe(token);
  });

  it("seals a token just over the inflate cap unpacked, and opens it", async () => {
    const unpacking = createTokenCipher({ LOCAL_ENCRYPTION_KEY: LOCAL_KEY, TOKEN_PACKING: "off" });
    const token = tokenOfLength(MAX_TOKEN_BYTES + 1);
    const sealed = Buffer.from(await cipher.encrypt(token, binding), "base64");
    const unpacked = Buffer.from(await unpacking.encrypt(token, binding), "base64");

    // The same size as with packing off (several SDK frames, so not the bare token length).
    expect(sealed.length).toBe(unpacked.length);
    expect(await cipher.decrypt(sealed.toString("base64"), binding)).toBe(token);
  });

  it("seals a token of exactly the inflate cap packed, and opens it", async () => {
    const token = tokenOfLength(MAX_TOKEN_BYTES);
    const sealed = Buffer.from(await cipher.encrypt(token, binding), "base64");
    const empty = Buffer.from(await cipher.encrypt("", binding), "base64");

    expect(sealed.length - empty.length).toBe(packToken(token).length);
    expect(sealed.length - empty.length).toBeLessThan(MAX_TOKEN_BYTES);
    expect(await cipher.decrypt(sealed.toString("base64"), binding)).toBe(token);
  });

  it("refuses a token packed in an unknown format with ConfigurationError, not TokenDecryptError", async () => {
    const sealed = await sealRaw(Buffer.concat([Buffer.from([0, 7]), Buffer.from("not-to-be-echoed")]));

    const error = await cipher.decrypt(sealed, binding).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error).not.toBeInstanceOf(TokenDecryptError);
    expect((error as Error).message).toMatch(/format 7\b.*newer release/);
    expect((error as Error).message).not.toContain("not-to-be-echoed");
  });
});
