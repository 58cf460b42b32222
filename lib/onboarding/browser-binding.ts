import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Cookie } from "tough-cookie";

/*
 * Binds one authorization attempt to the browser that started it (RFC 9700 §4.7.1: the client
 * must tie the `state` to the user agent, or a `state` seen elsewhere plus an attacker's own
 * authorization code connects the attacker's Exact user).
 *
 *   GET /start    ──► confirmation page + Set-Cookie __Host-connect-<nonce>=<256 random bits>
 *                     (nothing claimed: a preview gets a cookie of its own and spends nothing)
 *   POST /start   ◄── the page's button, same site: SameSite=Lax sends the cookie; none came
 *                     (another browser, cookies blocked, or a forged cross-site POST, which a
 *                     Lax cookie never accompanies) ──► refused before anything is claimed
 *                 ──► state = sign({ …, browserBinding: SHA-256(cookie) })  (travels via Exact)
 *   GET /callback ◄── Exact's redirect, top-level GET: SameSite=Lax sends the cookie back
 *                 ──► SHA-256(cookie) = state.browserBinding, or refused before the code exchange
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
 * The `Set-Cookie` of a fresh binding for the attempt with `nonce` (what `GET /start` sets).
 * @param maxAgeSeconds how long the browser keeps the cookie: until the link expires plus the
 *   life of a state signed at the last moment
 */
export function newBindingCookie(nonce: string, maxAgeSeconds: number): string {
  return bindingCookie(nonce, randomBytes(BINDING_VALUE_BYTES).toString("base64url"), maxAgeSeconds);
}

/** The values of the attempt's cookie among `cookies`. */
function presentedValues(cookies: readonly string[] | undefined, nonce: string): string[] {
  const name = bindingCookieName(nonce);
  return (cookies ?? [])
    .map((entry) => Cookie.parse(entry))
    .filter((cookie) => cookie?.key === name)
    .map((cookie) => cookie?.value ?? "");
}

/**
 * What `POST /start` binds the state to: SHA-256 of the attempt's cookie among `cookies` (a
 * Function URL event's `cookies`: one `name=value` per entry), base64url (43 characters), or
 * undefined when this browser sent none.
 */
export function presentedBinding(cookies: readonly string[] | undefined, nonce: string): string | undefined {
  // With the __Host- prefix (Path=/, this host only) a browser holds one such cookie. An empty
  // one is no binding: its hash would be known to anyone.
  const value = presentedValues(cookies, nonce).find((presented) => presented !== "");
  return value === undefined ? undefined : hashOf(value).toString("base64url");
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
  const values = presentedValues(cookies, nonce);
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
