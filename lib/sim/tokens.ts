import { randomBytes } from "node:crypto";

/**
 * Every secret the simulator hands out starts with one of these markers, so a test can scan
 * logs and output for leaked tokens with one regular expression.
 */
export const TOKEN_MARKERS = {
  accessToken: "simAT!",
  refreshToken: "simRT!",
  authorizationCode: "simAC!",
  /** The Exact session cookie of the login pages: whoever holds it is logged in. */
  session: "simSS!",
} as const;

/** Matches any simulator-issued secret (marker plus at least a few characters of its body). */
export const ISSUED_SECRET_PATTERN = /sim(?:AT|RT|AC|SS)![A-Za-z0-9_!+/=-]{8,}/;

/**
 * What the access and refresh tokens look like (option `tokenStyle`):
 * - `short`: base64url segments, about 330 and 220 characters (quick to read in a test's output);
 * - `long`: as Exact's grew, about 1,500 and 900 characters of standard base64 with `+`, `/`
 *   and `=` padding, segments joined by `!` (a column or an encoding that changes them breaks).
 */
export const TokenStyle = { Short: "short", Long: "long" } as const;
export type TokenStyle = (typeof TokenStyle)[keyof typeof TokenStyle];

/**
 * Random base64url segments joined by `!`: Exact's tokens are long, opaque and contain `!`,
 * which a client must form-encode (`%21`); segments make sure every token exercises that.
 */
function opaque(marker: string, segments: number, bytesPerSegment: number): string {
  const parts = Array.from({ length: segments }, () => randomBytes(bytesPerSegment).toString("base64url"));
  return `${marker}${parts.join("!")}`;
}

/** Three bytes whose base64 is `+/+/`: every long token holds both characters, not only probably. */
const PLUS_SLASH = Buffer.from([0xfb, 0xff, 0xbf]);

/**
 * Standard base64 segments joined by `!`. Each segment's byte count leaves a remainder of 2
 * modulo 3, so every segment ends in `=` padding, also in the middle of the token; the first
 * segment carries `+/+/`, aligned on a base64 quantum.
 */
function opaqueLong(marker: string, segments: number, bytesPerSegment: number): string {
  const parts = Array.from({ length: segments }, (_, index) => {
    const bytes =
      index === 0
        ? Buffer.concat([randomBytes(66), PLUS_SLASH, randomBytes(bytesPerSegment - 69)])
        : randomBytes(bytesPerSegment);
    return bytes.toString("base64");
  });
  return `${marker}${parts.join("!")}`;
}

/** About 330 characters (`short`), or about 1,500 (`long`: 8 segments of 184 characters). */
export function newAccessToken(style: TokenStyle = TokenStyle.Short): string {
  return style === TokenStyle.Long
    ? opaqueLong(TOKEN_MARKERS.accessToken, 8, 137)
    : opaque(TOKEN_MARKERS.accessToken, 4, 60);
}

/** About 220 characters (`short`), or about 900 (`long`: 5 segments of 180 characters). */
export function newRefreshToken(style: TokenStyle = TokenStyle.Short): string {
  return style === TokenStyle.Long
    ? opaqueLong(TOKEN_MARKERS.refreshToken, 5, 134)
    : opaque(TOKEN_MARKERS.refreshToken, 3, 54);
}

/**
 * About 70 characters; arrives URL-encoded in a redirect in real life. The B2C step's one-time
 * code (posted to `signin-azureb2c`) is one too: it is as secret, and the marker lets leak scans
 * find it.
 */
export function newAuthorizationCode(): string {
  return opaque(TOKEN_MARKERS.authorizationCode, 2, 24);
}

/** About 60 characters. */
export function newSessionId(): string {
  return opaque(TOKEN_MARKERS.session, 2, 20);
}

/** Ids and csrf tokens of the login flow: random, base64url, so they go into URLs unencoded. */
export function newOpaqueId(bytes = 24): string {
  return randomBytes(bytes).toString("base64url");
}
