import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Cookie } from "tough-cookie";

/*
 * Binds one authorization attempt to the browser that started it (RFC 9700 §4.7.1: the client
 * must tie the `state` to the user agent, or a `state` seen elsewhere plus an attacker's own
 * authorization code connects the attacker's Exact user).
 *
 *   POST /start  ──► Set-Cookie __Host-connect-<nonce>=<256 random bits>      (this browser only)
 *                ──► state = sign({ …, browserBinding: SHA-256(value) })      (travels via Exact)
 *   GET /callback ◄── Exact's redirect, top-level GET: SameSite=Lax sends the cookie back
 *                ──► SHA-256(cookie) = state.browserBinding, or refused before the code exchange
 *
 * The state carries only the hash, so a state read from a log, a proxy or a scanner gives no way
 * to make the cookie. One cookie per nonce: two links opened in one browser do not evict each
 * other. The `__Host-` prefix makes browsers refuse the cookie unless it is Secure, has Path=/
 * and no Domain, so no sibling host can plant or overwrite it (RFC 6265bis §4.1.3.2).
 */

/** `__Host-connect-<nonce>`: the cookie of one authorization attempt. */
export const BINDING_COOKIE_PREFIX = "__Host-connect-";

/** 256 random bits, base64url: 43 characters. */
const BINDING_VALUE_BYTES = 32;

/** What the POST of `/start` hands out: the browser keeps the cookie, the state keeps the hash. */
export interface BrowserBinding {
  /** A complete `Set-Cookie` value (Function URL response `cookies` entry). */
  readonly setCookie: string;
  /** SHA-256 of the cookie's value, base64url (43 characters): what the signed state carries. */
  readonly hash: string;
}

/** Outcome of {@link checkBrowserBinding}. */
export const BindingCheck = {
  Match: "match",
  /** No cookie of this attempt came with the request: another browser, or cookies blocked. */
  Missing: "missing",
  /** A cookie of this attempt came, but not the one the state was bound to. */
  Mismatch: "mismatch",
} as const;
export type BindingCheck = (typeof BindingCheck)[keyof typeof BindingCheck];

/** The cookie name of the attempt with this nonce (a base64url nonce is a valid cookie-name token). */
export function bindingCookieName(nonce: string): string {
  return `${BINDING_COOKIE_PREFIX}${nonce}`;
}

function hashOf(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

function bindingCookie(nonce: string, value: string, maxAgeSeconds: number): string {
  // SameSite=Lax, not Strict: Exact's redirect to /callback is a cross-site top-level GET, which
  // Lax cookies accompany and Strict ones do not. HttpOnly: no script ever needs it (the pages
  // run none). Serialized by tough-cookie, the library the login driver already uses for cookies.
  return new Cookie({
    key: bindingCookieName(nonce),
    value,
    maxAge: maxAgeSeconds,
    path: "/",
    secure: true,
    httpOnly: true,
    sameSite: "lax",
  }).toString();
}

/**
 * A fresh binding for the attempt with `nonce`.
 * @param maxAgeSeconds how long the browser keeps the cookie: as long as the state is valid
 */
export function newBrowserBinding(nonce: string, maxAgeSeconds: number): BrowserBinding {
  const value = randomBytes(BINDING_VALUE_BYTES).toString("base64url");
  return {
    setCookie: bindingCookie(nonce, value, maxAgeSeconds),
    hash: hashOf(value).toString("base64url"),
  };
}

/** The `Set-Cookie` value that removes the attempt's cookie (same attributes, `Max-Age=0`). */
export function clearingCookie(nonce: string): string {
  return bindingCookie(nonce, "", 0);
}

/**
 * Compares the attempt's cookie among `cookies` (a Function URL event's `cookies`: one
 * `name=value` per entry) with the hash the state carries, in constant time.
 */
export function checkBrowserBinding(
  cookies: readonly string[] | undefined,
  nonce: string,
  expectedHash: string,
): BindingCheck {
  const name = bindingCookieName(nonce);
  const values = (cookies ?? [])
    .map((entry) => Cookie.parse(entry))
    .filter((cookie) => cookie?.key === name)
    .map((cookie) => cookie?.value ?? "");
  if (values.length === 0) return BindingCheck.Missing;
  const expected = Buffer.from(expectedHash, "base64url");
  // With the __Host- prefix a browser holds one such cookie; should several arrive anyway, one
  // that matches proves this browser started the attempt (nobody else knows the value).
  return values.some((value) => {
    const presented = hashOf(value);
    return presented.length === expected.length && timingSafeEqual(presented, expected);
  })
    ? BindingCheck.Match
    : BindingCheck.Mismatch;
}
