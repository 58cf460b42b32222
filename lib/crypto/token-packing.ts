import { constants, deflateRawSync, inflateRawSync } from "node:zlib";

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
/** Refuses to inflate past this: no token comes near it (a guard, the bytes are authenticated anyway). */
const MAX_TOKEN_BYTES = 64 * 1024;

/** The bytes to encrypt for `token`: compressed and marked when that is shorter, its UTF-8 otherwise. */
export function packToken(token: string): Buffer {
  const utf8 = Buffer.from(token, "utf8");
  const deflated = deflateRawSync(utf8, { level: constants.Z_BEST_COMPRESSION });
  // A string starting with NUL is packed whatever the sizes, so unpacking never misreads it.
  if (deflated.length + 2 < utf8.length || utf8[0] === PACKED) {
    return Buffer.concat([Buffer.from([PACKED, PACKED_DEFLATE]), deflated]);
  }
  return utf8;
}

/**
 * The token `packToken` packed; bytes without the marker (every token sealed before packing
 * existed) are read as UTF-8.
 * @throws Error on an unknown format byte or a stream that does not inflate (the caller reports
 *   the token as undecryptable)
 */
export function unpackToken(bytes: Buffer): string {
  if (bytes[0] !== PACKED) return bytes.toString("utf8");
  if (bytes[1] !== PACKED_DEFLATE) throw new Error(`unknown token packing format ${bytes[1]}`);
  return inflateRawSync(bytes.subarray(2), { maxOutputLength: MAX_TOKEN_BYTES }).toString("utf8");
}
