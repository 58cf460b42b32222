import { randomBytes } from "node:crypto";
import { ConfigurationError } from "../errors.js";

/** AES-256 wrapping key length; the raw AES keyring refuses anything else. */
export const LOCAL_KEY_BYTES = 32;

const STANDARD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * A fresh wrapping key for `LOCAL_ENCRYPTION_KEY`: base64 of 32 random bytes.
 * For `npm start` and tests only; in AWS the key lives in KMS.
 */
export function generateLocalKey(): string {
  return randomBytes(LOCAL_KEY_BYTES).toString("base64");
}

/**
 * Decodes `LOCAL_ENCRYPTION_KEY`. Throws `ConfigurationError` unless it is standard base64 of
 * exactly 32 bytes; the message names the variable and the length, never the key.
 */
export function decodeLocalKey(encoded: string): Uint8Array {
  const text = encoded.trim();
  // Buffer.from(…, "base64") skips characters it does not know, so a typo would silently give a shorter key.
  if (!STANDARD_BASE64.test(text)) {
    throw new ConfigurationError("LOCAL_ENCRYPTION_KEY is not valid base64 (expected base64 of 32 bytes)");
  }
  const key = Buffer.from(text, "base64");
  if (key.length !== LOCAL_KEY_BYTES) {
    throw new ConfigurationError(
      `LOCAL_ENCRYPTION_KEY must be base64 of exactly ${LOCAL_KEY_BYTES} bytes, got ${key.length} bytes`,
    );
  }
  return new Uint8Array(key);
}
