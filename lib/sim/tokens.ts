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
export const ISSUED_SECRET_PATTERN = /sim(?:AT|RT|AC|SS)![A-Za-z0-9_!-]{8,}/;

/**
 * Random base64url segments joined by `!`: Exact's tokens are long, opaque and contain `!`,
 * which a client must form-encode (`%21`); segments make sure every token exercises that.
 */
function opaque(marker: string, segments: number, bytesPerSegment: number): string {
  const parts = Array.from({ length: segments }, () => randomBytes(bytesPerSegment).toString("base64url"));
  return `${marker}${parts.join("!")}`;
}

/** About 330 characters, the size of a real Exact access token. */
export function newAccessToken(): string {
  return opaque(TOKEN_MARKERS.accessToken, 4, 60);
}

/** About 220 characters. */
export function newRefreshToken(): string {
  return opaque(TOKEN_MARKERS.refreshToken, 3, 54);
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
