import type { HttpOutcome } from "./http.js";

/** Why Exact considers a chain dead; only a new authorization (a login) brings it back. */
export const DeadReason = {
  OldToken: "old_token",
  RefreshExpired: "refresh_expired",
  InvalidChain: "invalid_chain",
} as const;
export type DeadReason = (typeof DeadReason)[keyof typeof DeadReason];

/** Tokens found in a token-endpoint body. The access token may be absent on a rotation-only answer. */
export interface IssuedTokens {
  readonly refreshToken: string;
  readonly accessToken?: string;
  readonly expiresInSeconds?: number;
}

/**
 * Every token-endpoint answer, mapped to what the broker must do next.
 * `rotated` is set whenever the body carried a refresh token, whatever the status: Exact may
 * have rotated the chain, so that token must be persisted before anything else (invariant 4).
 */
export type TokenOutcome =
  /**
   * A 2xx that carried a refresh token: the chain advanced. Without an access token (a
   * rotation-only answer) the chain has none until its next refresh (token-protocol.ts).
   */
  | { readonly kind: "tokens"; readonly rotated: IssuedTokens }
  | ({ readonly kind: "too_early" } & Answered)
  /**
   * A 403 whose `Reason` says Exact refuses the user (UserBlockReason): no login fixes it
   * (shared/exact-online.md, "403 with a Reason header"); the chain itself may be intact.
   */
  | ({ readonly kind: "user_blocked"; readonly reason: UserBlockReason } & Answered)
  | ({ readonly kind: "chain_dead"; readonly reason: DeadReason } & Answered)
  | ({ readonly kind: "rate_limited"; readonly retryAfterSeconds: number } & Answered)
  | ({
      readonly kind: "unavailable";
      readonly retryAfterSeconds?: number;
      readonly sent: boolean;
      readonly detail: string;
      /**
       * Why Exact did not process the request: `network` (never sent), `overloaded` (503),
       * `maintenance` (a bare 4xx with an HTML or plain-text body, as Exact's nightly maintenance
       * answers), `unrecognised` (a 4xx whose OAuth error we do not know). In every case the same
       * refresh token is tried again later.
       */
      readonly cause: UnavailableCause;
    } & Partial<Answered>)
  /** Exact refused our client credentials (`invalid_client`) or the app's scopes: an operator must fix the app. */
  | ({ readonly kind: "client_rejected"; readonly detail: string; readonly scope: boolean } & Answered)
  /**
   * Sent, but whether Exact processed it is unknown: no answer (`status` absent), or an answer
   * that proves nothing and carried no refresh token: a 5xx other than 503 (a gateway fault
   * may come after processing), a 2xx with neither tokens nor an error.
   */
  | { readonly kind: "outcome_unknown"; readonly detail: string; readonly status?: number };

export const UnavailableCause = {
  Network: "network",
  Overloaded: "overloaded",
  Maintenance: "maintenance",
  Unrecognised: "unrecognised",
  /** A 5xx other than 503 that still carried a refresh token: processed, then the gateway failed. */
  ServerError: "server_error",
} as const;
export type UnavailableCause = (typeof UnavailableCause)[keyof typeof UnavailableCause];

/**
 * Exact's `Reason` header values on a 403 that refuse the user, not the chain or the app
 * (shared/exact-online.md); `/current/Me` answers them too (chain/user-blocks.ts).
 */
export const USER_BLOCK_REASONS = [
  "BlockedUser",
  "InactiveUser",
  "LicenseExpired",
  "NoDivisionAccess",
] as const;
export type UserBlockReason = (typeof USER_BLOCK_REASONS)[number];

/** The user-block reason a `Reason` header names (`BlockedUser` or `BlockedUser: prose`), if any. */
export function userBlockReason(header: string | null | undefined): UserBlockReason | undefined {
  const word = header?.split(":")[0]?.trim();
  return USER_BLOCK_REASONS.find((reason) => reason === word);
}

/**
 * A gateway's "Bad Gateway" / "Gateway Timeout" without a refresh token: Exact's gateway could not
 * reach or wait for the OAuth server. Like a 503 it is an outage of the app (outage-pacing.ts),
 * but it may also come after Exact processed the call, so it stays an unknown outcome.
 */
export function gatewayOutage(outcome: TokenOutcome): boolean {
  return outcome.kind === "outcome_unknown" && (outcome.status === 502 || outcome.status === 504);
}

/** Present when Exact answered: its status decides whether Exact counts the call as an error. */
interface Answered {
  readonly status: number;
  readonly rotated?: IssuedTokens;
}

/**
 * Exact's error limit counts 4xx answers (too-early included) per app, user and endpoint. A
 * maintenance page is the gateway's, not the OAuth server's answer: we assume Exact's counter does
 * not see it, and count it nowhere, so a long maintenance cannot spend a chain's budget. The
 * assumption is unconfirmed: the simulator counts every scripted 4xx (the pessimistic case), and
 * outage pacing (chain/outage-pacing.ts) keeps the calls few either way.
 */
export function countsAsExactError(outcome: TokenOutcome): boolean {
  if (outcome.kind === "unavailable" && outcome.cause === UnavailableCause.Maintenance) return false;
  return "status" in outcome && outcome.status !== undefined && outcome.status >= 400 && outcome.status < 500;
}

interface OAuthErrorBody {
  readonly error?: unknown;
  readonly error_description?: unknown;
  readonly access_token?: unknown;
  readonly refresh_token?: unknown;
  readonly expires_in?: unknown;
}

/** The body as an OAuth JSON object, or undefined when it is none (an HTML page, plain text, empty). */
function parseBody(body: string): OAuthErrorBody | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
      ? (parsed as OAuthErrorBody)
      : undefined;
  } catch {
    return undefined;
  }
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

/** Exact sends `expires_in` as a string ("600"); a number is accepted too. */
function seconds(value: unknown): number | undefined {
  const n = typeof value === "string" ? Number(value) : value;
  return typeof n === "number" && Number.isFinite(n) && n > 0 ? n : undefined;
}

function issuedFrom(body: OAuthErrorBody): IssuedTokens | undefined {
  const refreshToken = nonEmpty(body.refresh_token);
  if (!refreshToken) return undefined;
  const accessToken = nonEmpty(body.access_token);
  // A success without (or with a garbled) expires_in has been reported: Exact documents 600 s.
  const expiresInSeconds = seconds(body.expires_in) ?? (accessToken ? EXACT_ACCESS_TOKEN_SECONDS : undefined);
  return {
    refreshToken,
    ...(accessToken ? { accessToken } : {}),
    ...(expiresInSeconds ? { expiresInSeconds } : {}),
  };
}

/** An access token's life when Exact does not say (shared/exact-online.md: 600 s). */
export const EXACT_ACCESS_TOKEN_SECONDS = 600;

/** Seconds until a limit resets: Retry-After, else Exact's X-RateLimit reset headers (epoch ms). */
export function retryAfterFrom(headers: Headers, nowMs: number): number | undefined {
  const retryAfter = headers.get("retry-after");
  if (retryAfter !== null) {
    const asSeconds = Number(retryAfter);
    if (Number.isFinite(asSeconds) && asSeconds >= 0) return Math.ceil(asSeconds);
    const asDate = Date.parse(retryAfter);
    if (!Number.isNaN(asDate)) return Math.max(0, Math.ceil((asDate - nowMs) / 1000));
  }
  for (const name of ["x-ratelimit-minutely-reset", "x-ratelimit-reset"]) {
    const reset = Number(headers.get(name));
    if (headers.has(name) && Number.isFinite(reset) && reset > 0) {
      return Math.max(1, Math.ceil((reset - nowMs) / 1000));
    }
  }
  return undefined;
}

const TOO_EARLY = /access[_ ]?token not expired/i;
const OLD_TOKEN = /old refresh token|obsolete/i;
const EXPIRED = /refresh token expired/i;
/** Exact's words when a policy change leaves an app without the scopes it calls with, on any endpoint. */
export const SCOPE_VIOLATED = /application scope violated/i;
const DEFAULT_RATE_LIMIT_SECONDS = 60;

/**
 * Maps one token-endpoint exchange to a TokenOutcome, covering every response listed in
 * shared/exact-online.md and every simulator variant. Too-early is checked first: Exact
 * has answered it with both 400 and 401, and it must never be read as a dead chain (invariant 6).
 */
export function classifyTokenResponse(outcome: HttpOutcome, nowMs: number): TokenOutcome {
  if (outcome.kind === "not_sent") {
    return {
      kind: "unavailable",
      sent: false,
      cause: UnavailableCause.Network,
      detail: `not sent: ${outcome.cause.message}`,
    };
  }
  if (outcome.kind === "unknown") {
    return { kind: "outcome_unknown", detail: outcome.cause.message };
  }
  const { status, headers } = outcome;
  const json = parseBody(outcome.body);
  const body = json ?? {};
  const rotated = issuedFrom(body);
  const error = typeof body.error === "string" ? body.error : "";
  const description = typeof body.error_description === "string" ? body.error_description : "";
  const withRotated = { status, ...(rotated ? { rotated } : {}) };
  const retryAfterSeconds = retryAfterFrom(headers, nowMs);
  const retry = retryAfterSeconds !== undefined ? { retryAfterSeconds } : {};

  // A refresh token in a 2xx is the chain's next step, whatever else the body lacks or says.
  if (status >= 200 && status < 300 && rotated) return { kind: "tokens", rotated };
  if (headers.get("reason")?.startsWith("TooEarlyToRefreshTokens") || TOO_EARLY.test(description)) {
    return { kind: "too_early", ...withRotated };
  }
  const blockedFor = status === 403 ? userBlockReason(headers.get("reason")) : undefined;
  if (blockedFor) return { kind: "user_blocked", reason: blockedFor, ...withRotated };
  if (status === 429) {
    return {
      kind: "rate_limited",
      retryAfterSeconds: retryAfterSeconds ?? DEFAULT_RATE_LIMIT_SECONDS,
      ...withRotated,
    };
  }
  if (status === 503) {
    return {
      kind: "unavailable",
      sent: true,
      cause: UnavailableCause.Overloaded,
      detail: "HTTP 503",
      ...retry,
      ...withRotated,
    };
  }
  if (status >= 500 && rotated) {
    // Processed (the body says so), then the gateway failed: the chain advanced.
    return {
      kind: "unavailable",
      sent: true,
      cause: UnavailableCause.ServerError,
      detail: `HTTP ${status} with a new refresh token`,
      ...withRotated,
    };
  }
  if (status >= 500) {
    // A gateway fault after a slow call may come after Exact rotated the chain (exact-online.md).
    return { kind: "outcome_unknown", status, detail: `HTTP ${status}` };
  }
  if (error === "invalid_client" || SCOPE_VIOLATED.test(`${error} ${description}`)) {
    return {
      kind: "client_rejected",
      detail: `HTTP ${status} ${error || "application scope violated"}`,
      scope: SCOPE_VIOLATED.test(`${error} ${description}`),
      ...withRotated,
    };
  }
  if (OLD_TOKEN.test(description) || (status === 401 && error === "unauthorized_client")) {
    return { kind: "chain_dead", reason: DeadReason.OldToken, ...withRotated };
  }
  if (EXPIRED.test(description)) {
    return { kind: "chain_dead", reason: DeadReason.RefreshExpired, ...withRotated };
  }
  if (error === "invalid_grant") {
    return { kind: "chain_dead", reason: DeadReason.InvalidChain, ...withRotated };
  }
  if (status >= 200 && status < 300 && !error) {
    // A success without tokens: Exact may have processed it. One probe decides (invariant 5).
    return { kind: "outcome_unknown", status, detail: `HTTP ${status} without tokens` };
  }
  // An answer we do not recognise proves nothing about the chain. A bare page (no OAuth JSON) is
  // the maintenance answer; the same refresh token works afterwards.
  return {
    kind: "unavailable",
    sent: true,
    cause: json === undefined ? UnavailableCause.Maintenance : UnavailableCause.Unrecognised,
    detail: `${json === undefined ? "maintenance-like" : "unrecognised"} HTTP ${status}${error ? ` ${error}` : ""}`,
    ...retry,
    ...withRotated,
  };
}
