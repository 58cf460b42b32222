import { randomBytes } from "node:crypto";

/**
 * Every secret the simulator hands out starts with one of these markers, so a test can scan
 * logs and output for leaked tokens with one regular expression.
 */
export const TOKEN_MARKERS = {
  accessToken: "simAT!",
  refreshToken: "simRT!",
  authorizationCode: "simAC!",
} as const;

/** Matches any simulator-issued secret (marker plus at least a few characters of its body). */
export const ISSUED_SECRET_PATTERN = /sim(?:AT|RT|AC)![A-Za-z0-9_!-]{8,}/;

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

/** About 70 characters; arrives URL-encoded in a redirect in real life. */
export function newAuthorizationCode(): string {
  return opaque(TOKEN_MARKERS.authorizationCode, 2, 24);
}
