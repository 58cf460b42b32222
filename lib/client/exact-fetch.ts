import { BrokerError, Throttled, ValidationError } from "../errors.js";
import type { AccessToken } from "./access-token.js";
import { bounded, callSignal, DEFAULT_DEADLINE_MS, type WaitBounds } from "./deadline.js";
import { DeadlineExceeded } from "./errors.js";
import {
  ExactApiError,
  errorFromExactAnswer,
  exactUnreachable,
  NoDivision,
  refusesUser,
} from "./exact-errors.js";
import type { RateBudget, RateKey } from "./rate-budget.js";
import { parseRateLimitHeaders } from "./rate-limit-headers.js";
import type { GetAccessTokenOptions, InvalidateOptions } from "./token-client.js";

/**
 * `fetch`'s init, with a body that can be sent twice (the retry after a 401 sends it again: no
 * stream) and two options of this library.
 */
export interface ExactFetchInit extends Omit<RequestInit, "body"> {
  readonly body?: string | URLSearchParams | Blob | FormData | ArrayBufferView | ArrayBuffer | null;
  /**
   * Epoch ms on the client's clock (its `now`) by which the whole call ends: the vend, the wait
   * for the rate budget, the call to Exact and its one retry; the body must be read by then too.
   * Past it: `DeadlineExceeded`. `signal` (RequestInit's) aborts all of it as well.
   * @default the client's now + DEFAULT_DEADLINE_MS (30 s)
   */
  readonly deadlineMs?: number;
  /** token-vend's function name or ARN, as for `getAccessToken`. */
  readonly functionName?: string;
}

/** What `exactPages` takes: every page is a GET with these. */
export interface ExactPagesOptions {
  /** As `ExactFetchInit.deadlineMs`, for all pages together. @default DEFAULT_DEADLINE_MS for each page */
  readonly deadlineMs?: number;
  readonly signal?: AbortSignal;
  readonly headers?: ConstructorParameters<typeof Headers>[0];
  readonly functionName?: string;
}

/** What `exactFetch` needs of its `TokenClient`. */
export interface ExactFetchDeps {
  readonly tokens: {
    getAccessToken(connectionId: string, options: GetAccessTokenOptions): Promise<AccessToken>;
    invalidate(connectionId: string, options: InvalidateOptions): void;
  };
  readonly fetch: typeof fetch;
  readonly rateBudget: RateBudget | undefined;
  readonly now: () => number;
}

/** `/api/v1/{division}/…`: the division a call is counted against (Exact's limits are per division). */
const DIVISION_IN_PATH = /^\/api\/v\d+\/(\d{1,10})\//;

/**
 * A `.` or `..` segment in the path part (before `?` or `#`), also percent-encoded (`%2e`): WHATWG
 * URL resolves those, so a path "relative to the division" could climb out of it (or out of /api/).
 */
function hasDotSegment(path: string): boolean {
  const pathPart = path.split(/[?#]/, 1)[0] ?? "";
  return pathPart
    .split(/[/\\]/)
    .map((segment) => segment.replace(/%2e/gi, "."))
    .some((segment) => segment === "." || segment === "..");
}

function invalidPath(path: string, why: string): ValidationError {
  return new ValidationError(`invalid Exact path ${JSON.stringify(path.slice(0, 100))}: ${why}`);
}

/**
 * The URL of `path` for this token's connection: `{baseUrl}/api/v1/{division}/{path}` for a path
 * relative to the division, `{baseUrl}{path}` for one that starts with `/api/`.
 * @throws NoDivision for a relative path when the connection has no division yet;
 *   ValidationError for any other path starting with `/`, naming another host, or with a `.` or
 *   `..` segment (raw or percent-encoded)
 */
export function exactUrl(token: AccessToken, path: string): URL {
  const base = new URL(token.baseUrl);
  if (hasDotSegment(path)) throw invalidPath(path, 'no "." or ".." segments');
  let url: URL;
  let within: string;
  if (path.startsWith("/api/")) {
    url = new URL(`${base.origin}${path}`);
    within = "/api/";
  } else if (path.startsWith("/") || path.startsWith("\\") || /^[a-z][a-z0-9+.-]*:/i.test(path))
    throw invalidPath(path, 'relative to the division ("crm/Accounts") or starting with "/api/"');
  else if (token.division === null)
    throw new NoDivision(
      "the connection has no division yet (no pinned division): use a path starting with /api/, or pin one with exact-broker connection set-division",
    );
  else {
    within = `/api/v1/${token.division}/`;
    url = new URL(`${base.origin}${within}${path}`);
  }
  // The bearer token goes to the connection's Exact host and nowhere else.
  if (url.origin !== base.origin)
    throw new ValidationError("an Exact path must stay on the connection's host");
  // What the checks above do not foresee (a URL parser's own normalization) still may not leave.
  if (!url.pathname.startsWith(within)) throw invalidPath(path, `it leaves ${within}`);
  return url;
}

function rateKey(token: AccessToken, url: URL): RateKey | undefined {
  const inPath = DIVISION_IN_PATH.exec(url.pathname)?.[1];
  const division = inPath === undefined ? token.division : Number(inPath);
  // A broker older than issue 11 sends no clientId, and Me has no division when the connection
  // has none: such calls are not counted.
  return token.clientId === undefined || division === null
    ? undefined
    : { clientId: token.clientId, division };
}

/** When the rate budget itself failed: DynamoDB has already retried a throttled request. */
const BUDGET_FAILURE_RETRY_SECONDS = 5;

/**
 * The rate budget failed (DynamoDB throttled it, the role lacks the grant, no network): nothing
 * went to Exact. Only the error's name goes into the message (an AWS message names ARNs); the
 * error itself is the `cause`.
 */
function budgetFailed(what: string, cause: unknown): Throttled {
  const name = cause instanceof Error ? cause.name : "Error";
  return new Throttled(`${what}: the shared rate budget failed (${name}); nothing was sent to Exact`, {
    cause,
    retryAfterSeconds: BUDGET_FAILURE_RETRY_SECONDS,
  });
}

/** One call with one token: budget, request, budget again. */
async function callOnce(
  deps: ExactFetchDeps,
  token: AccessToken,
  url: URL,
  init: Omit<ExactFetchInit, "deadlineMs" | "functionName" | "signal">,
  bounds: WaitBounds & { readonly deadlineMs: number },
  what: string,
): Promise<Response> {
  const key = deps.rateBudget ? rateKey(token, url) : undefined;
  if (deps.rateBudget && key) {
    const budget = deps.rateBudget;
    await bounded(
      () => budget.acquire(key, bounds.deadlineMs),
      bounds,
      deps.now,
      `${what}: the rate budget`,
    ).catch((error: unknown) => {
      if (error instanceof BrokerError || (bounds.signal?.aborted && error === bounds.signal.reason))
        throw error;
      throw budgetFailed(what, error);
    });
  }
  const headers = new Headers(init.headers);
  if (!headers.has("Accept")) headers.set("Accept", "application/json");
  headers.set("Authorization", `Bearer ${token.accessToken}`);
  if (bounds.deadlineMs <= deps.now()) throw new DeadlineExceeded(`${what}: the deadline had passed`);
  const signal = callSignal(bounds, deps.now);
  let response: Response;
  try {
    response = await deps.fetch(url, { ...init, headers, signal } as RequestInit);
  } catch (error) {
    if (bounds.signal?.aborted) throw bounds.signal.reason;
    if (signal.aborted) throw new DeadlineExceeded(`${what}: the deadline passed`, { cause: error });
    throw exactUnreachable(what, error);
  }
  if (deps.rateBudget && key)
    // The call has happened: its answer matters more than the budget's bookkeeping, whose own
    // trouble the next acquire meets anyway.
    await deps.rateBudget
      .observe(key, parseRateLimitHeaders(response.headers, response.status))
      .catch(() => {});
  return response;
}

/** `exactFetch` and the URL it asked for last (`exactPages` checks `__next` against it). */
async function fetchExact(
  deps: ExactFetchDeps,
  connectionId: string,
  path: string,
  init: ExactFetchInit,
): Promise<{ response: Response; url: URL }> {
  const { deadlineMs = deps.now() + DEFAULT_DEADLINE_MS, functionName, signal, ...request } = init;
  const bounds = { deadlineMs, ...(signal ? { signal } : {}) };
  const tokenOptions = { ...bounds, ...(functionName ? { functionName } : {}) };
  const method = (request.method ?? "GET").toUpperCase();
  let token = await deps.tokens.getAccessToken(connectionId, tokenOptions);
  let url = exactUrl(token, path);
  const what = () => `${method} ${url.pathname}`;
  let response = await callOnce(deps, token, url, request, bounds, what());
  if (response.status === 401) {
    // Exact refused this token: report its generation, so token-vend serves a newer one or checks
    // this one with Exact (the conditional refresh, issue 11), and try once more.
    await response.body?.cancel();
    deps.tokens.invalidate(connectionId, { generation: token.generation });
    token = await deps.tokens.getAccessToken(connectionId, tokenOptions);
    url = exactUrl(token, path);
    response = await callOnce(deps, token, url, request, bounds, what());
  }
  if (response.status === 403 && refusesUser(response.headers.get("Reason"))) {
    // Exact refuses the user or its licence, which no new token changes: no retry, but the
    // generation is reported as refused, so the next vend has the broker check it with
    // /current/Me, whose 403 makes the chain BLOCKED (one UserBlocked event, no login).
    deps.tokens.invalidate(connectionId, { generation: token.generation });
  }
  if (!response.ok) throw await errorFromExactAnswer(response, what(), deps.now());
  return { response, url };
}

/**
 * Calls Exact's REST API for a connection with a token from token-vend: `Authorization: Bearer`,
 * `Accept: application/json` (unless `init.headers` names another), one retry after a 401 through
 * `invalidate` and a new vend. Resolves to the 2xx `Response`; every other answer is a typed
 * error: `Throttled` (429, `retryAfterSeconds` until the spent budget's `X-RateLimit-*` reset;
 * or the `RateBudget` refused the call, or failed, with its error as the `cause`: nothing sent),
 * `ExactBadRequest` (400), `ExactUnauthorized` (401 twice), `ExactForbidden` (403, with Exact's
 * `Reason`, never retried; one that refuses the user, as `BlockedUser`, also reports the token's
 * generation through `invalidate`, so the next vend has the broker check the user),
 * `ExactNotFound` (404), `ExactServerError` (5xx, retryable), `ExactApiError` (any other),
 * `ExactUnavailable` (no answer); and `DeadlineExceeded`, `NoDivision`, `ValidationError` (a bad
 * path), or token-vend's errors as `getAccessToken` throws them. Each call (the retry too)
 * acquires from the client's `RateBudget` first and feeds it Exact's headers after.
 */
export async function exactFetch(
  deps: ExactFetchDeps,
  connectionId: string,
  path: string,
  init: ExactFetchInit = {},
): Promise<Response> {
  return (await fetchExact(deps, connectionId, path, init)).response;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The rows of an OData collection (`d.results`), one array per page, following `__next` until a
 * page has none. Each page is one `exactFetch` (a GET, counted against the rate budget, with its
 * own 401 retry). A `__next` leading off the connection's host is refused (`ExactApiError`): the
 * token goes nowhere else. A `__next` back to a page already fetched is an `ExactApiError` (it would
 * loop without end, each turn a call charged to the rate budget), and so is a page that is no
 * OData collection.
 */
export async function* exactPages<Row = Record<string, unknown>>(
  deps: ExactFetchDeps,
  connectionId: string,
  path: string,
  options: ExactPagesOptions = {},
): AsyncGenerator<Row[], void, undefined> {
  let next: string | undefined = path;
  /** Origin, path and query of each page fetched (a fragment never reaches Exact). */
  const fetched = new Set<string>();
  const page = (url: URL) => `${url.origin}${url.pathname}${url.search}`;
  while (next !== undefined) {
    const { response, url } = await fetchExact(deps, connectionId, next, { ...options, method: "GET" });
    fetched.add(page(url));
    const what = `GET ${url.pathname}`;
    const invalid = (why: string) =>
      new ExactApiError(`Exact's answer to ${what} ${why}`, { status: response.status });
    const body: unknown = await response.json().catch(() => undefined);
    const d = isRecord(body) ? body.d : undefined;
    const results = isRecord(d) ? d.results : undefined;
    if (!isRecord(d) || !Array.isArray(results)) throw invalid("is not an OData collection (d.results)");
    yield results as Row[];
    if (d.__next === undefined || d.__next === null) return;
    const nextUrl = typeof d.__next === "string" && URL.canParse(d.__next) ? new URL(d.__next) : undefined;
    if (!nextUrl || nextUrl.origin !== url.origin || !nextUrl.pathname.startsWith("/api/"))
      throw invalid("has a __next off the connection's host");
    if (fetched.has(page(nextUrl))) throw invalid("has a __next to a page already fetched");
    next = `${nextUrl.pathname}${nextUrl.search}`;
  }
}
