import { InvalidVendAnswer } from "./errors.js";

/**
 * token-vend's answer, as handed to a consumer (frozen). The shape is the README's ("token-vend");
 * the two fields marked optional are absent from brokers older than issue 11 and present
 * from every newer one.
 */
export interface AccessToken {
  readonly accessToken: string;
  readonly tokenType: "Bearer";
  /** ISO 8601, on token-vend's clock. */
  readonly expiresAt: string;
  /**
   * Whole seconds of validity the token had when token-vend answered (rounded down). The client
   * counts the token's expiry from when the answer arrived, on its own clock.
   */
  readonly expiresInSeconds?: number;
  /** The chain's generation; `invalidate` sends it back as `rejectedGeneration`. */
  readonly generation: number;
  /** Exact's base URL for this connection, e.g. `https://start.exactonline.nl`. */
  readonly baseUrl: string;
  /** The connection's pinned division (README, "The pinned division"); null before it has one. */
  readonly division: number | null;
  /** The connection's Exact app (OAuth client ID, not a secret): the key of Exact's API rate limits. */
  readonly clientId?: string;
}

/** An answer as the client keeps it: with its expiry on this process's clock. */
export interface CachedToken {
  readonly answer: AccessToken;
  /** Epoch ms on the client's clock after which the token is no longer valid. */
  readonly expiresAtMs: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Checks the documented answer shape and dates the token on this process's clock: it expires
 * `expiresInSeconds` after `receivedAtMs`, whatever this clock says of `expiresAt`, so a consumer
 * whose clock is off by a minute never keeps an expired token (issue 11, "Expiry on the consumer's
 * own clock"). Without `expiresInSeconds` (an older broker) `expiresAt` is all there is. The
 * answer left token-vend a moment before `receivedAtMs`: `expiresInSeconds` is rounded down and
 * `CACHE_SAFETY_MARGIN_SECONDS` covers the transit.
 *
 * Never puts the payload in a message: it holds a token.
 * @throws InvalidVendAnswer naming the first field that is missing or malformed
 */
export function parseVendAnswer(text: string, receivedAtMs: number): CachedToken {
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    throw new InvalidVendAnswer("token-vend's answer is not JSON");
  }
  if (!isRecord(payload)) throw new InvalidVendAnswer("token-vend's answer is not an object");
  const p = payload;
  const bad = (field: string) => new InvalidVendAnswer(`token-vend's answer has no valid "${field}"`);
  if (typeof p.accessToken !== "string" || p.accessToken === "") throw bad("accessToken");
  if (p.tokenType !== "Bearer") throw bad("tokenType");
  const expiresAtMs = typeof p.expiresAt === "string" ? Date.parse(p.expiresAt) : Number.NaN;
  if (!Number.isFinite(expiresAtMs)) throw bad("expiresAt");
  const expiresIn = p.expiresInSeconds;
  if (expiresIn !== undefined && !(Number.isInteger(expiresIn) && (expiresIn as number) >= 0))
    throw bad("expiresInSeconds");
  if (!Number.isInteger(p.generation)) throw bad("generation");
  if (typeof p.baseUrl !== "string" || p.baseUrl === "") throw bad("baseUrl");
  if (p.division !== null && !Number.isInteger(p.division)) throw bad("division");
  if (p.clientId !== undefined && (typeof p.clientId !== "string" || p.clientId === ""))
    throw bad("clientId");
  const answer: AccessToken = Object.freeze({
    accessToken: p.accessToken,
    tokenType: "Bearer",
    expiresAt: p.expiresAt as string,
    ...(expiresIn !== undefined ? { expiresInSeconds: expiresIn as number } : {}),
    generation: p.generation as number,
    baseUrl: p.baseUrl,
    division: p.division as number | null,
    ...(p.clientId !== undefined ? { clientId: p.clientId as string } : {}),
  });
  return {
    answer,
    expiresAtMs: expiresIn === undefined ? expiresAtMs : receivedAtMs + (expiresIn as number) * 1000,
  };
}
