import { describe, expect, it } from "vitest";
import { decodeLocalKey, generateLocalKey } from "../../lib/crypto/local-key.js";
import { ConfigurationError } from "../../lib/errors.js";

describe("generateLocalKey", () => {
  it("returns base64 of 32 random bytes", () => {
    const key = generateLocalKey();

    expect(Buffer.from(key, "base64")).toHaveLength(32);
    expect(decodeLocalKey(key)).toHaveLength(32);
    expect(generateLocalKey()).not.toBe(key);
  });
});

describe("decodeLocalKey", () => {
  it("refuses base64 with characters Buffer would silently skip", () => {
    const key = generateLocalKey();
    const typo = `${key.slice(0, 10)}*${key.slice(11)}`;

    expect(() => decodeLocalKey(typo)).toThrow(ConfigurationError);
  });
});
