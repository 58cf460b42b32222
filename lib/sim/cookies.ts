/**
 * Just enough of cookies for the login pages: reading a `Cookie` header and writing
 * `Set-Cookie`. Every value the simulator sets is base64url or a marker plus base64url, so no
 * quoting or encoding is needed, and anything else a client sends is kept as it came.
 */

/** The cookies of a request by name; the first of a repeated name wins, as browsers send the most specific first. */
export function readCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const pair of (header ?? "").split(";")) {
    const equals = pair.indexOf("=");
    if (equals <= 0) continue;
    const name = pair.slice(0, equals).trim();
    if (name !== "" && !cookies.has(name)) {
      cookies.set(name, pair.slice(equals + 1).trim());
    }
  }
  return cookies;
}

/**
 * A session cookie (no expiry: it lives as long as the client keeps it; the simulator forgets
 * it on reset). Not `Secure`: the simulator speaks plain HTTP, and a Secure cookie would never
 * come back over it.
 */
export function setCookie(name: string, value: string, path = "/"): string {
  return `${name}=${value}; Path=${path}; HttpOnly; SameSite=Lax`;
}
