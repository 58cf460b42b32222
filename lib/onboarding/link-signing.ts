import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import * as z from "zod";
import { CONNECTION_ID_PATTERN } from "../handlers/events.js";
import { ConnectRefused, RefusalReason, type RefusedSubject } from "./connect-refused.js";

/** A connect link is good for 15 minutes after `exact-broker connect` printed it. */
export const LINK_TTL_SECONDS = 15 * 60;
/** The OAuth state is good for 15 minutes after /start: time enough for a login with TOTP. */
export const STATE_TTL_SECONDS = 15 * 60;

/** What a link and a state both vouch for. */
export interface SignedClaims {
  readonly connectionId: string;
  /** 128 random bits, base64url; names the single-use markers. */
  readonly nonce: string;
  readonly expiresAtEpochSec: number;
}

/** What a state vouches for besides the link's claims. */
export interface StateClaims extends SignedClaims {
  /** SHA-256 (base64url) of the browser-binding cookie POST /start set (browser-binding.ts). */
  readonly browserBinding: string;
}

/** The query parameters of `/start`. */
export interface LinkQuery {
  readonly c: string;
  readonly n: string;
  readonly e: string;
  readonly s: string;
}

const NONCE_PATTERN = /^[A-Za-z0-9_-]{22}$/;
/** HMAC-SHA256 and SHA-256 are 32 bytes: 43 base64url characters without padding. */
const DIGEST_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const EPOCH_SEC_PATTERN = /^[0-9]{1,12}$/;
/** A state is about 150 characters; anything much longer is not ours and is not decoded. */
const MAX_STATE_LENGTH = 512;

/*
 * Domain separation: a link's MAC and a state's MAC are computed over different labels, so one
 * can never be passed off as the other even though both vouch for the same claims.
 */
const LINK_LABEL = "exact-token-broker/connect-link/v1";
const STATE_LABEL = "exact-token-broker/oauth-state/v1";

const stateClaimsSchema = z.strictObject({
  connectionId: z.string().regex(CONNECTION_ID_PATTERN),
  nonce: z.string().regex(NONCE_PATTERN),
  expiresAtEpochSec: z.number().int().nonnegative(),
  browserBinding: z.string().regex(DIGEST_PATTERN),
});

/** A fresh nonce: 128 random bits, base64url. */
export function newNonce(): string {
  return randomBytes(16).toString("base64url");
}

function mac(key: Buffer, label: string, parts: readonly string[]): Buffer {
  return createHmac("sha256", key)
    .update([label, ...parts].join("\n"))
    .digest();
}

/** Constant-time comparison of a presented base64url MAC with the expected one. */
function macMatches(presented: string, expected: Buffer): boolean {
  if (!DIGEST_PATTERN.test(presented)) return false;
  const bytes = Buffer.from(presented, "base64url");
  return bytes.length === expected.length && timingSafeEqual(bytes, expected);
}

function refuse(subject: RefusedSubject, reason: RefusalReason, message: string, connectionId?: string) {
  return new ConnectRefused(reason, subject, message, connectionId === undefined ? {} : { connectionId });
}

function checkExpiry(subject: RefusedSubject, claims: SignedClaims, nowMs: number): void {
  if (nowMs >= claims.expiresAtEpochSec * 1000) {
    const what = subject === "link" ? "connect link" : "authorization attempt";
    throw refuse(
      subject,
      RefusalReason.Expired,
      `this ${what} for connection "${claims.connectionId}" expired at ${new Date(claims.expiresAtEpochSec * 1000).toISOString()}`,
      claims.connectionId,
    );
  }
}

/** Signs a connect link's claims; the result is the `/start` query. */
export function signLink(key: Buffer, claims: SignedClaims): LinkQuery {
  const e = String(claims.expiresAtEpochSec);
  const s = mac(key, LINK_LABEL, [claims.connectionId, claims.nonce, e]).toString("base64url");
  return { c: claims.connectionId, n: claims.nonce, e, s };
}

/**
 * Checks a `/start` query: form, then signature, then expiry (a forged link learns nothing about
 * expiry or connections).
 * @throws ConnectRefused (malformed, bad_signature, expired)
 */
export function verifyLink(
  key: Buffer,
  query: Readonly<Record<string, string | undefined>>,
  nowMs: number,
): SignedClaims {
  const { c, n, e, s } = query;
  if (
    c === undefined ||
    n === undefined ||
    e === undefined ||
    s === undefined ||
    !CONNECTION_ID_PATTERN.test(c) ||
    !NONCE_PATTERN.test(n) ||
    !EPOCH_SEC_PATTERN.test(e)
  ) {
    throw refuse("link", RefusalReason.Malformed, "this connect link is incomplete or damaged");
  }
  if (!macMatches(s, mac(key, LINK_LABEL, [c, n, e]))) {
    throw refuse(
      "link",
      RefusalReason.BadSignature,
      "this connect link is not valid: its signature does not match",
    );
  }
  const claims = { connectionId: c, nonce: n, expiresAtEpochSec: Number(e) };
  checkExpiry("link", claims, nowMs);
  return claims;
}

/** Signs the OAuth `state`: base64url JSON of the claims, ".", base64url HMAC of that text. */
export function signState(key: Buffer, claims: StateClaims): string {
  const payload = Buffer.from(
    JSON.stringify({
      connectionId: claims.connectionId,
      nonce: claims.nonce,
      expiresAtEpochSec: claims.expiresAtEpochSec,
      browserBinding: claims.browserBinding,
    }),
  ).toString("base64url");
  return `${payload}.${mac(key, STATE_LABEL, [payload]).toString("base64url")}`;
}

/**
 * Checks the `state` Exact hands back: form, signature (over the exact text received), then
 * the claims' shape and expiry. The JSON is only parsed once the signature vouched for it.
 * @throws ConnectRefused (malformed, bad_signature, expired)
 */
export function verifyState(key: Buffer, state: string | undefined, nowMs: number): StateClaims {
  const [payload, presented, extra] = state?.split(".") ?? [];
  if (
    state === undefined ||
    state.length > MAX_STATE_LENGTH ||
    !payload ||
    presented === undefined ||
    extra !== undefined ||
    !/^[A-Za-z0-9_-]+$/.test(payload)
  ) {
    throw refuse(
      "state",
      RefusalReason.Malformed,
      "the state that came back from Exact is missing or damaged",
    );
  }
  if (!macMatches(presented, mac(key, STATE_LABEL, [payload]))) {
    throw refuse(
      "state",
      RefusalReason.BadSignature,
      "the state that came back from Exact is not valid: its signature does not match",
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    parsed = undefined;
  }
  const claims = stateClaimsSchema.safeParse(parsed);
  if (!claims.success) {
    // Signed by us but not in today's form: a state from an older or newer version (one made
    // before states were bound to a browser is refused here, as it should be).
    throw refuse(
      "state",
      RefusalReason.Malformed,
      "the state that came back from Exact is not in a known form",
    );
  }
  checkExpiry("state", claims.data, nowMs);
  return claims.data;
}
