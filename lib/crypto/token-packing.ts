import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { ConfigurationError } from "../errors.js";

/*
 * What the cipher encrypts for a token: its UTF-8 bytes, or a marked raw-DEFLATE stream of them
 * when that is shorter. Exact's tokens are long (about 1,500 and 900 characters of base64 with
 * `!` separators, ../shared/exact-online.md) and DEFLATE takes about a quarter off text drawn
 * from 65 characters: a quarter less ciphertext in the chain item, whose every write DynamoDB
 * bills by the KB. Each token is compressed alone and holds nothing an attacker chooses, so the
 * length a compressed ciphertext shows tells nothing (no CRIME/BREACH-style mixing of secrets
 * with attacker-controlled text).
 */

/** First byte of a packed token: an OAuth token never starts with it (RFC 6749 A.12, VSCHAR is %x20-7E). */
const PACKED = 0x00;
/** Format of the packed bytes after the marker: 1, raw DEFLATE (RFC 1951). */
const PACKED_DEFLATE = 0x01;
/**
 * Format 2: the UTF-8 bytes as they are, after the marker. Only for a string that starts with NUL
 * (so must be marked) and is longer than {@link MAX_TOKEN_BYTES} (so must not be deflated).
 */
const PACKED_STORED = 0x02;
/**
 * The most UTF-8 bytes a packed token inflates to, and so the longest token that is packed:
 * a longer one is sealed as its UTF-8 bytes, so a token never fails to open for being long,
 * whatever Exact returned (its answers may be 256 KiB, lib/exact/http.ts). Unpacking refuses to
 * inflate past it: a bound on any stream, not only ours (the bytes are authenticated anyway).
 */
export const MAX_TOKEN_BYTES = 64 * 1024;

/**
 * The bytes to encrypt for `token`: compressed and marked when that is shorter and the token is at
 * most {@link MAX_TOKEN_BYTES}, its UTF-8 otherwise.
 */
export function packToken(token: string): Buffer {
  const utf8 = Buffer.from(token, "utf8");
  // A string starting with NUL is marked whatever the sizes, so unpacking never misreads it.
  const mustMark = utf8[0] === PACKED;
  if (utf8.length > MAX_TOKEN_BYTES) {
    return mustMark ? Buffer.concat([Buffer.from([PACKED, PACKED_STORED]), utf8]) : utf8;
  }
  const deflated = deflateRawSync(utf8, { level: constants.Z_BEST_COMPRESSION });
  if (deflated.length + 2 < utf8.length || mustMark) {
    return Buffer.concat([Buffer.from([PACKED, PACKED_DEFLATE]), deflated]);
  }
  return utf8;
}

/**
 * The token `packToken` packed; bytes without the marker (every token sealed before packing
 * existed) are read as UTF-8.
 * @throws ConfigurationError on an unknown format byte: the bytes are authenticated, so a newer
 *   release packed them; the message names the format byte only
 * @throws Error on a stream that does not inflate, or inflates past {@link MAX_TOKEN_BYTES} (the
 *   caller reports the token as undecryptable)
 */
export function unpackToken(bytes: Buffer): string {
  if (bytes[0] !== PACKED) return bytes.toString("utf8");
  const format = bytes[1];
  if (format === PACKED_DEFLATE) {
    return inflateRawSync(bytes.subarray(2), { maxOutputLength: MAX_TOKEN_BYTES }).toString("utf8");
  }
  if (format === PACKED_STORED) return bytes.subarray(2).toString("utf8");
  throw new ConfigurationError(
    `Stored token is packed in format ${format ?? "(none)"}, which this release of the broker does not know: ` +
      "a newer release sealed it. Deploy that release or a later one to open it",
  );
}
