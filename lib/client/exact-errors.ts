import { BrokerError, ExactUnavailable, Throttled } from "../errors.js";
import { parseRateLimitHeaders, throttledForSeconds } from "./rate-limit-headers.js";

/*
 * What `exactFetch` throws for an answer of Exact's REST API that is not a success. Each `name`
 * is set explicitly, as in ./errors.ts, so it survives a minified consumer bundle. A 429 is the
 * `Throttled` token-vend uses too (one `catch` for "slow down", with `retryAfterSeconds`); Exact
 * not answering at all is `ExactUnavailable`, as on token-vend.
 *
 * Messages hold the method, the path and Exact's own error text, never a header or a token.
 */

/** Exact documents no Retry-After for its 5xx answers: a short pause before a retry. */
export const SERVER_ERROR_RETRY_SECONDS = 5;
/** Exact's error texts are short; this bounds what an HTML error page can put in a log line. */
const MAX_EXACT_MESSAGE_LENGTH = 300;

type ExactApiErrorOptions = ErrorOptions & {
  readonly status: number;
  readonly exactMessage?: string;
  readonly retryAfterSeconds?: number;
};

/**
 * Exact's REST API answered with an error status this library has no narrower class for
 * (405, 409, 412, …), or with a body that is not what was asked (a page that is no OData
 * collection). `status` is Exact's HTTP status; `exactMessage` its OData `error.message.value`.
 */
export class ExactApiError extends BrokerError {
  readonly status: number;
  readonly exactMessage: string | undefined;

  constructor(message: string, options: ExactApiErrorOptions) {
    super(message, options);
    this.name = "ExactApiError";
    this.status = options.status;
    this.exactMessage = options.exactMessage;
  }
}

/** 400: Exact refused the request itself (a query option, a body); not retryable as it is. */
export class ExactBadRequest extends ExactApiError {
  constructor(message: string, options: ExactApiErrorOptions) {
    super(message, options);
    this.name = "ExactBadRequest";
  }
}

/**
 * 401 again after one retry with a token token-vend served after hearing of the refusal
 * (`rejectedGeneration`): the broker found the token good, or Exact refuses this request for
 * another reason. Not retryable as it is.
 */
export class ExactUnauthorized extends ExactApiError {
  constructor(message: string, options: ExactApiErrorOptions) {
    super(message, options);
    this.name = "ExactUnauthorized";
  }
}

/**
 * 403: the user may not do this. `reason` is Exact's `Reason` header (`NoDivisionAccess`,
 * `BlockedUser`, …; shared/exact-online.md); a new token does not change it.
 */
export class ExactForbidden extends ExactApiError {
  readonly reason: string | undefined;

  constructor(message: string, options: ExactApiErrorOptions & { readonly reason?: string }) {
    super(message, options);
    this.name = "ExactForbidden";
    this.reason = options.reason;
  }
}

/**
 * Exact's `Reason` values on a 403 that refuse the user or its licence, not the request: the
 * broker's list (lib/exact/classify-token-response.ts USER_BLOCK_REASONS, kept equal by
 * test/client/user-blocked.test.ts), copied so that a consumer's bundle holds none of the broker.
 */
export const USER_BLOCK_REASONS = [
  "BlockedUser",
  "InactiveUser",
  "LicenseExpired",
  "NoDivisionAccess",
] as const;

/** Whether a 403's `Reason` header (`BlockedUser` or `BlockedUser: prose`) refuses the user. */
export function refusesUser(reason: string | null | undefined): boolean {
  const word = reason?.split(":")[0]?.trim();
  return USER_BLOCK_REASONS.some((blocked) => blocked === word);
}

/** 404: no such resource or entity. */
export class ExactNotFound extends ExactApiError {
  constructor(message: string, options: ExactApiErrorOptions) {
    super(message, options);
    this.name = "ExactNotFound";
  }
}

/**
 * 5xx: Exact failed. Retryable (`retryAfterSeconds`: Retry-After, else 5), but a request that
 * changes data may have been carried out all the same (shared/exact-online.md: a 500 after a
 * slow call had been processed): look before repeating a POST.
 */
export class ExactServerError extends ExactApiError {
  constructor(message: string, options: ExactApiErrorOptions) {
    super(message, options);
    this.name = "ExactServerError";
  }
}

/** The connection has no pinned division yet, so a path relative to the division has no URL. */
export class NoDivision extends BrokerError {
  constructor(message: string) {
    super(message);
    this.name = "NoDivision";
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Exact's error text from a body: the REST API's `{"error":{"code","message":{"lang","value"}}}`,
 * also `message` as a plain string or OAuth's `error_description`; else undefined.
 */
export function exactMessageOf(bodyText: string): string | undefined {
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    return undefined;
  }
  const error = isRecord(body) ? body.error : undefined;
  const message = isRecord(error) ? error.message : undefined;
  const text =
    (isRecord(message) && typeof message.value === "string" ? message.value : undefined) ??
    (typeof message === "string" ? message : undefined) ??
    (isRecord(body) && typeof body.error_description === "string" ? body.error_description : undefined);
  if (text === undefined) return undefined;
  return text.length > MAX_EXACT_MESSAGE_LENGTH ? `${text.slice(0, MAX_EXACT_MESSAGE_LENGTH)}…` : text;
}

function retryAfterHeader(headers: Headers): number | undefined {
  const value = headers.get("Retry-After")?.trim();
  return value !== undefined && /^\d{1,9}$/.test(value) ? Math.max(1, Number(value)) : undefined;
}

/**
 * The typed error for an answer of Exact's REST API that is not 2xx (its body is read here).
 * `what` names the request (`GET /api/v1/123/crm/Accounts`); `nowMs` dates a 429's wait.
 */
export async function errorFromExactAnswer(
  response: Response,
  what: string,
  nowMs: number,
): Promise<BrokerError> {
  const status = response.status;
  const exactMessage = exactMessageOf(await response.text().catch(() => ""));
  const said = exactMessage === undefined ? "" : `: ${exactMessage}`;
  const options = { status, ...(exactMessage !== undefined ? { exactMessage } : {}) };
  const message = `Exact answered ${status} to ${what}${said}`;
  if (status === 429) {
    const observation = parseRateLimitHeaders(response.headers, status);
    const which = observation.dailyRemaining === 0 ? "daily" : "per-minute";
    return new Throttled(`${message} (the ${which} API rate limit of this app and division)`, {
      retryAfterSeconds: throttledForSeconds(observation, nowMs),
    });
  }
  if (status === 400) return new ExactBadRequest(message, options);
  if (status === 401) return new ExactUnauthorized(message, options);
  if (status === 403) {
    const reason = response.headers.get("Reason") ?? undefined;
    const why = reason === undefined ? "" : ` (Reason: ${reason.slice(0, 100)})`;
    return new ExactForbidden(`${message}${why}`, { ...options, ...(reason ? { reason } : {}) });
  }
  if (status === 404) return new ExactNotFound(message, options);
  if (status >= 500)
    return new ExactServerError(message, {
      ...options,
      retryAfterSeconds: retryAfterHeader(response.headers) ?? SERVER_ERROR_RETRY_SECONDS,
    });
  return new ExactApiError(message, options);
}

/** Exact did not answer (no connection, reset, TLS): the request may or may not have arrived. */
export function exactUnreachable(what: string, cause: unknown): ExactUnavailable {
  const detail = cause instanceof Error ? `${cause.name}: ${cause.message}`.slice(0, 200) : "no answer";
  return new ExactUnavailable(`Exact did not answer ${what} (${detail}); it may have arrived`, {
    cause,
    retryAfterSeconds: SERVER_ERROR_RETRY_SECONDS,
  });
}
