import { formatExactDateTime } from "./clock.js";
import { ERRORS_PER_HOUR } from "./error-limit.js";
import type { Answer } from "./http.js";
import type { IssuedTokens, User } from "./state.js";

/**
 * Every answer the Exact-facing endpoints give, in one place, with statuses and bodies as
 * shared/exact-online.md records them. Answers the sources do not record (bad input, the error
 * limit, faults, the daily token cap, the REST API's errors) are the simulator's choice and
 * documented in lib/sim/README.md. Scripted answers are the caller's (scripts.ts).
 */

const NO_STORE = { "Cache-Control": "no-store", Pragma: "no-cache" };

const TOO_EARLY_DESCRIPTION = "Rate limit exceeded: access_token not expired";

export function tokensIssued(tokens: IssuedTokens, accessTtlSeconds: number): Answer {
  return {
    status: 200,
    headers: NO_STORE,
    body: {
      access_token: tokens.accessToken,
      token_type: "bearer",
      // Exact sends expires_in as a string; clients that expect a number must cope.
      expires_in: String(accessTtlSeconds),
      refresh_token: tokens.refreshToken,
    },
  };
}

/** Observed 2026: 400 with a `Reason` header; Exact's own text says 401 (variant). */
export function tooEarly(status: 400 | 401, carriedRefreshToken: string | undefined): Answer {
  return {
    status,
    headers: { ...NO_STORE, Reason: `TooEarlyToRefreshTokens: ${TOO_EARLY_DESCRIPTION}` },
    body: {
      error: "access_denied",
      error_description: TOO_EARLY_DESCRIPTION,
      ...(carriedRefreshToken === undefined ? {} : { refresh_token: carriedRefreshToken }),
    },
  };
}

export function oldRefreshToken(): Answer {
  return {
    status: 401,
    body: { error: "unauthorized_client", error_description: "Old refresh token used." },
  };
}

/** Invantive's older wording for the same case (variant). */
export function obsoletedRefreshToken(): Answer {
  return invalidRequest("An obsoleted refresh token can not be used.");
}

/** Reported for a chain broken by a new authorization (variant). */
export function invalidChainId(): Answer {
  return invalidGrant("Token is not allowed, because of invalid or empty chainId");
}

export function refreshTokenExpired(expiredAtMs: number, nowMs: number): Answer {
  return invalidRequest(
    `The refresh token expired at ${formatExactDateTime(expiredAtMs)} and it is now ${formatExactDateTime(nowMs)}.`,
  );
}

export function invalidClient(description: string): Answer {
  return { status: 401, body: { error: "invalid_client", error_description: description } };
}

export function invalidRequest(description: string): Answer {
  return { status: 400, body: { error: "invalid_request", error_description: description } };
}

export function invalidGrant(description: string): Answer {
  return { status: 400, body: { error: "invalid_grant", error_description: description } };
}

/** Exact does not document its error-limit answer; 429 is what a client must back off on. */
export function errorLimited(blockedUntilMs: number, nowMs: number): Answer {
  return {
    status: 429,
    headers: { "Retry-After": String(Math.max(1, Math.ceil((blockedUntilMs - nowMs) / 1000))) },
    body: {
      error: "rate_limited",
      error_description: `Error limit exceeded: more than ${ERRORS_PER_HOUR} errors this hour for this app, user and endpoint; blocked until ${new Date(blockedUntilMs).toISOString()}`,
    },
  };
}

export function me(user: User): Answer {
  return {
    status: 200,
    body: {
      d: {
        results: [
          {
            UserID: user.userId,
            UserName: user.username,
            FullName: user.fullName,
            CurrentDivision: user.division,
            Email: user.email,
          },
        ],
      },
    },
  };
}

/** The REST API's OData-style error, as JSON. */
function odataError(message: string): { error: { code: string; message: { lang: string; value: string } } } {
  return { error: { code: "", message: { lang: "", value: message } } };
}

/** A missing, unknown, expired or revoked access token, on `/current/Me` and the REST API. */
export function unauthorized(): Answer {
  return { status: 401, body: odataError("Unauthorized") };
}

/** Exact's documented `Reason` for "the user does not have access to the requested division". */
export function noDivisionAccess(): Answer {
  return { status: 403, headers: { Reason: "NoDivisionAccess" }, body: odataError("Forbidden") };
}

/** Over an API rate limit; `rateLimitHeaders` say which budget is gone and when it resets. */
export function apiRateLimited(rateLimitHeaders: Record<string, string>): Answer {
  return {
    status: 429,
    headers: rateLimitHeaders,
    body: odataError("API rate limit exceeded: too many requests for this app and division"),
  };
}

/** A query option the simulator cannot read (`$top`, `$skiptoken`). */
export function apiBadRequest(message: string, rateLimitHeaders: Record<string, string>): Answer {
  return { status: 400, headers: rateLimitHeaders, body: odataError(message) };
}

/** One page of an OData collection; `next` is the absolute URL of the next page, absent on the last. */
export function apiPage(
  results: unknown[],
  next: string | undefined,
  rateLimitHeaders: Record<string, string>,
): Answer {
  return {
    status: 200,
    headers: rateLimitHeaders,
    body: { d: next === undefined ? { results } : { results, __next: next } },
  };
}

/**
 * The `dailyTokenCap` variant's refusal. Exact announced the cap but not its answer: a 429
 * with a JSON error and Retry-After is the simulator's guess, documented as unconfirmed.
 */
export function dailyTokenCapReached(capPerDay: number, dayEndMs: number, nowMs: number): Answer {
  return {
    status: 429,
    headers: { "Retry-After": String(Math.max(1, Math.ceil((dayEndMs - nowMs) / 1000))) },
    body: {
      error: "too_many_requests",
      error_description: `Token request limit exceeded: ${capPerDay} token requests today for this app and user; blocked until ${new Date(dayEndMs).toISOString()}`,
    },
  };
}

export function faultStatus(status: 500 | 503): Answer {
  return {
    status,
    body: { error: "server_error", error_description: `Simulated fault: HTTP ${status}` },
  };
}

/**
 * Exact's API limit answer. When the minutely budget is gone Exact sends only the minutely
 * headers, resets as epoch milliseconds; without headers a client has nothing to go by.
 */
export function faultRateLimited(withHeaders: boolean, nowMs: number): Answer {
  const minuteMs = 60 * 1000;
  return {
    status: 429,
    headers: withHeaders
      ? {
          "X-RateLimit-Minutely-Limit": "60",
          "X-RateLimit-Minutely-Remaining": "0",
          "X-RateLimit-Minutely-Reset": String((Math.floor(nowMs / minuteMs) + 1) * minuteMs),
        }
      : {},
    body: { error: "too_many_requests", error_description: "Simulated fault: API rate limit exceeded" },
  };
}
