import type { ChainRecord } from "../chain/chain-record.js";
import { ValidationError } from "../errors.js";

/** The two paths of the connect function, below its URL. */
export const ConnectPath = { Start: "/start", Callback: "/callback" } as const;

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * The connect URL in canonical form (an origin without a trailing slash): https, or http on a
 * loopback host when `allowLoopback`; no path, query or credentials, because the handler only
 * answers `/start` and `/callback` at its root.
 * @throws ValidationError naming what is wrong
 */
export function normalizeConnectUrl(raw: string, allowLoopback: boolean): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ValidationError(`connect URL "${raw}" is not a URL`);
  }
  const loopback = allowLoopback && LOOPBACK_HOSTS.has(url.hostname);
  if (url.protocol !== "https:" && !(loopback && url.protocol === "http:")) {
    throw new ValidationError(`connect URL "${url.origin}" must be an https URL`);
  }
  if (
    (url.pathname !== "/" && url.pathname !== "") ||
    url.search ||
    url.hash ||
    url.username ||
    url.password
  ) {
    throw new ValidationError(
      `connect URL must be the function URL itself (like https://abc.lambda-url.eu-west-1.on.aws), without a path`,
    );
  }
  return url.origin;
}

/** `<connect URL>/callback`, the redirect URI a connection must have for this flow. */
export function callbackUrlFor(connectUrl: string): string {
  return `${connectUrl.replace(/\/+$/, "")}${ConnectPath.Callback}`;
}

/** Equal after URL normalization (host case, default port, an empty path). */
export function sameUrl(a: string, b: string): boolean {
  try {
    return new URL(a).href === new URL(b).href;
  } catch {
    return false;
  }
}

/** The connect URL a connection's redirect URI implies, if it has the `<origin>/callback` form. */
export function connectUrlOf(record: Pick<ChainRecord, "redirectUri">): string | undefined {
  try {
    const origin = new URL(record.redirectUri).origin;
    return sameUrl(callbackUrlFor(origin), record.redirectUri) ? origin : undefined;
  } catch {
    return undefined;
  }
}
