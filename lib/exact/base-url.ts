import { ValidationError } from "../errors.js";

/**
 * Exact's country instances. The client secret and refresh tokens are sent to the base URL,
 * so anything else is refused (design invariant 11).
 */
export const EXACT_HOSTS = [
  "start.exactonline.nl",
  "start.exactonline.be",
  "start.exactonline.de",
  "start.exactonline.fr",
  "start.exactonline.co.uk",
  "start.exactonline.com",
  "start.exactonline.es",
] as const;

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * Returns the canonical base URL (origin, no trailing slash) or throws ValidationError.
 * `allowLoopback` admits http://127.0.0.1:PORT for the simulator (EXACT_ALLOW_LOOPBACK=1).
 */
export function checkBaseUrl(raw: string, allowLoopback: boolean): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ValidationError("base URL is not a URL; use e.g. https://start.exactonline.nl");
  }
  const pathless = (url.pathname === "/" || url.pathname === "") && !url.search && !url.hash;
  const credentialless = !url.username && !url.password;
  if (pathless && credentialless) {
    if (
      url.protocol === "https:" &&
      url.port === "" &&
      (EXACT_HOSTS as readonly string[]).includes(url.hostname)
    ) {
      return url.origin;
    }
    if (
      allowLoopback &&
      LOOPBACK_HOSTS.has(url.hostname) &&
      (url.protocol === "http:" || url.protocol === "https:")
    ) {
      return url.origin;
    }
  }
  const hint = allowLoopback
    ? " or a loopback address"
    : " (EXACT_ALLOW_LOOPBACK=1 admits 127.0.0.1 for the simulator)";
  throw new ValidationError(
    `base URL "${url.origin}" is not one of Exact's hosts (https://${EXACT_HOSTS.join(", https://")})${hint}`,
  );
}
