import type { LambdaClient } from "@aws-sdk/client-lambda";
import { ConfigurationError, ValidationError } from "../errors.js";
import { CONNECTION_ID_PATTERN } from "../handlers/connection-id.js";
import { type AccessToken, type CachedToken, parseVendAnswer } from "./access-token.js";
import { bounded } from "./deadline.js";
import { type ExactFetchInit, type ExactPagesOptions, exactFetch, exactPages } from "./exact-fetch.js";
import type { AwsCredentialsProvider } from "./identity-signer.js";
import type { RateBudget } from "./rate-budget.js";
import { VendInvoker } from "./vend-invoker.js";

export type { AccessToken } from "./access-token.js";

export interface GetAccessTokenOptions {
  /**
   * Seconds the token must still be valid for; default 30. Sent to token-vend, which accepts 0 up
   * to its `REFRESH_WINDOW_SECONDS` (30 by default) and answers `ValidationError` above that.
   */
  readonly minValiditySeconds?: number;
  /** token-vend's function name or ARN; default: the client's, then env `TOKEN_VEND_FUNCTION_NAME`. */
  readonly functionName?: string;
  /**
   * Epoch ms on this client's clock (its `now`) after which the call stops waiting for token-vend
   * and throws `DeadlineExceeded`. The invoke runs on (other callers may share it) and its answer
   * is cached. @default none: the invoke ends with token-vend's own timeout
   */
  readonly deadlineMs?: number;
  /** Stops the wait as `deadlineMs` does, rejecting with the signal's reason. */
  readonly signal?: AbortSignal;
}

export interface InvalidateOptions {
  /**
   * The generation of the token Exact refused (`AccessToken.generation`). A newer token already
   * cached (another caller's refusal fetched it) is kept. @default the cached token's generation
   */
  readonly generation?: number;
}

export interface TokenClientOptions {
  /** Default: one `new LambdaClient({})`, created on first use (region from the environment). */
  readonly lambda?: LambdaClient;
  /** Epoch milliseconds; default `Date.now`. */
  readonly now?: () => number;
  /** Default: env `TOKEN_VEND_FUNCTION_NAME`, read at each call. */
  readonly functionName?: string;
  /**
   * The broker's server ID (its stack's `BrokerServerId` output); default env
   * `TOKEN_VEND_SERVER_ID`, read at each call. With it, every invoke carries this consumer's
   * signed AWS identity (`callerIdentity`), which a broker under `perConnection` requires; without
   * it none is sent (a `stackWide` broker serves anyway, a `perConnection` one answers AccessDenied).
   */
  readonly serverId?: string;
  /** token-vend's region, where the broker verifies identities; default: the function ARN's, then env AWS_REGION. */
  readonly region?: string;
  /** Where STS is, for tests against moto_server. @default https://sts.<region>.amazonaws.com */
  readonly stsEndpoint?: string;
  /** The credentials that sign the identity. @default the AWS SDK's default provider chain */
  readonly credentials?: AwsCredentialsProvider;
  /** What `exactFetch` calls Exact with. @default the global `fetch` */
  readonly fetch?: typeof fetch;
  /**
   * Shares Exact's API rate limits among consumers (lib/client/rate-budget.ts): `exactFetch`
   * acquires before and observes after each call. @default none: calls are not paced
   */
  readonly rateBudget?: RateBudget;
}

export const DEFAULT_MIN_VALIDITY_SECONDS = 30;

/**
 * A cached token is reused only while it has `minValiditySeconds` plus this margin left. The
 * margin covers what the cache cannot see: the answer's transit from token-vend, and the time
 * between handing out the token and Exact receiving the request that carries it. A fresh
 * answer from token-vend is returned as it is (the broker just checked it).
 */
export const CACHE_SAFETY_MARGIN_SECONDS = 5;

const FUNCTION_NAME_ENV = "TOKEN_VEND_FUNCTION_NAME";

interface Flight {
  readonly minValiditySeconds: number;
  /** The generation this invoke reported as refused, if any. */
  readonly rejectedGeneration: number | undefined;
  readonly promise: Promise<CachedToken>;
}

/**
 * Per connection and token-vend function: the cached answer, the invoke in flight, and the
 * generation Exact refused that the next invoke reports (until token-vend answers it).
 */
interface Slot {
  cached: CachedToken | undefined;
  flight: Flight | undefined;
  rejectedGeneration: number | undefined;
}

/**
 * Gets access tokens from token-vend for a consumer Lambda: one in-memory cache per instance,
 * one invoke in flight per connection, token-vend's failures as typed errors; and calls Exact's
 * REST API with them (`exactFetch`, `exactPages`).
 */
export class TokenClient {
  readonly #now: () => number;
  readonly #functionName: string | undefined;
  readonly #invoker: VendInvoker;
  readonly #fetch: typeof fetch;
  readonly #rateBudget: RateBudget | undefined;
  /** connectionId → function name → slot. */
  readonly #slots = new Map<string, Map<string, Slot>>();

  constructor(options: TokenClientOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#functionName = options.functionName;
    this.#invoker = new VendInvoker({ ...options, now: this.#now });
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#rateBudget = options.rateBudget;
  }

  /**
   * An access token for the connection with at least `minValiditySeconds` left: from memory
   * while it has that plus `CACHE_SAFETY_MARGIN_SECONDS`, otherwise from token-vend. Its expiry
   * is counted on this client's clock from when token-vend's answer arrived (`expiresInSeconds`;
   * `expiresAt` only from a broker that sends none). Concurrent calls for one connection share one
   * invoke; a caller that needs more validity than the shared answer has invokes again. Throws
   * the `BrokerError` subclass token-vend threw (`retryAfterSeconds` set on retryable ones),
   * `TokenVendInvokeError` when Lambda refused the invoke, `InvalidVendAnswer`,
   * `DeadlineExceeded`, or `ValidationError`/`ConfigurationError` before any invoke.
   */
  async getAccessToken(connectionId: string, options: GetAccessTokenOptions = {}): Promise<AccessToken> {
    const minValiditySeconds = options.minValiditySeconds ?? DEFAULT_MIN_VALIDITY_SECONDS;
    if (typeof connectionId !== "string" || !CONNECTION_ID_PATTERN.test(connectionId))
      throw new ValidationError(
        "invalid connectionId: must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
      );
    if (!Number.isInteger(minValiditySeconds) || minValiditySeconds < 0)
      throw new ValidationError("invalid minValiditySeconds: must be an integer of 0 or more");
    const functionName = options.functionName ?? this.#functionName ?? process.env[FUNCTION_NAME_ENV];
    if (!functionName)
      throw new ConfigurationError(
        `no token-vend function: set ${FUNCTION_NAME_ENV} or pass functionName (its name or ARN)`,
      );
    const wait = (start: () => Promise<CachedToken>) =>
      bounded(start, options, this.#now, `waiting for token-vend (connection ${connectionId})`);

    // Each turn either answers or waits for an invoke that ended; it ends at the latest with
    // an invoke of this caller's own.
    for (;;) {
      const slot = this.#slot(connectionId, functionName);
      if (slot.cached && this.#fresh(slot.cached, minValiditySeconds)) return slot.cached.answer;
      const flight = slot.flight;
      if (!flight)
        return (await wait(() => this.#start(slot, functionName, connectionId, minValiditySeconds))).answer;
      const entry = await wait(() => flight.promise);
      if (flight.minValiditySeconds >= minValiditySeconds || this.#fresh(entry, minValiditySeconds))
        return entry.answer;
    }
  }

  /**
   * Forgets the connection's cached token (call it when Exact answered 401, or 403 with a
   * `Reason` that refuses the user, as `exactFetch` does), so the next `getAccessToken` asks
   * token-vend again and reports the refused generation (`rejectedGeneration`): token-vend then
   * bypasses its caches and serves a newer token, or checks the refused one with Exact (a blocked
   * user: `UserBlocked`). An invoke already in flight still answers its callers, but its answer
   * is not cached, unless it already reports this generation or a newer one.
   *
   * The report is sent until token-vend answers a token, or answers `ValidationError`: then the
   * same invoke is made once more without the report, and its answer (or error) is the vend's. That
   * happens when the chain restarted below the reported generation (the connection removed and
   * added again, a table restore), and with a broker older than issue 11, which refuses the field
   * (upgrade the broker before its consumers: such a broker cannot check the refused token).
   */
  invalidate(connectionId: string, options: InvalidateOptions = {}): void {
    const byFunction = this.#slots.get(connectionId);
    if (!byFunction) return;
    for (const [functionName, slot] of byFunction) {
      const cachedGeneration = slot.cached?.answer.generation;
      if (
        options.generation !== undefined &&
        cachedGeneration !== undefined &&
        cachedGeneration > options.generation
      )
        continue;
      const rejected = options.generation ?? cachedGeneration;
      const reported = slot.flight?.rejectedGeneration;
      if (rejected !== undefined && reported !== undefined && reported >= rejected) continue;
      const pending = [rejected, slot.rejectedGeneration].filter((g): g is number => g !== undefined);
      byFunction.set(functionName, {
        cached: undefined,
        flight: undefined,
        rejectedGeneration: pending.length > 0 ? Math.max(...pending) : undefined,
      });
    }
  }

  /**
   * Calls Exact's REST API for the connection: `path` relative to its division
   * (`"crm/Accounts?$top=1"`) or from `/api/` (`"/api/v1/current/Me"`). See lib/client/exact-fetch.ts.
   */
  exactFetch(connectionId: string, path: string, init?: ExactFetchInit): Promise<Response> {
    return exactFetch(this.#exactDeps(), connectionId, path, init);
  }

  /** The rows of an OData collection, page by page, following `__next`. See lib/client/exact-fetch.ts. */
  exactPages<Row = Record<string, unknown>>(
    connectionId: string,
    path: string,
    options?: ExactPagesOptions,
  ): AsyncGenerator<Row[], void, undefined> {
    return exactPages<Row>(this.#exactDeps(), connectionId, path, options);
  }

  #exactDeps() {
    return { tokens: this, fetch: this.#fetch, rateBudget: this.#rateBudget, now: this.#now };
  }

  #fresh(entry: CachedToken, minValiditySeconds: number): boolean {
    return entry.expiresAtMs - this.#now() >= (minValiditySeconds + CACHE_SAFETY_MARGIN_SECONDS) * 1000;
  }

  #slot(connectionId: string, functionName: string): Slot {
    let byFunction = this.#slots.get(connectionId);
    if (!byFunction) {
      byFunction = new Map();
      this.#slots.set(connectionId, byFunction);
    }
    let slot = byFunction.get(functionName);
    if (!slot) {
      slot = { cached: undefined, flight: undefined, rejectedGeneration: undefined };
      byFunction.set(functionName, slot);
    }
    return slot;
  }

  #start(slot: Slot, functionName: string, connectionId: string, minValiditySeconds: number) {
    // A slot has at most one flight (callers join it while it runs). After an invalidate the
    // slot is replaced in #slots, so whatever this flight writes into it is never read.
    const rejectedGeneration = slot.rejectedGeneration;
    const answered = () => {
      if (slot.rejectedGeneration === rejectedGeneration) slot.rejectedGeneration = undefined;
    };
    const plain = { connectionId, minValiditySeconds };
    const invoked =
      rejectedGeneration === undefined
        ? this.#invoker.invoke(functionName, plain)
        : this.#invoker
            .invoke(functionName, { ...plain, rejectedGeneration })
            // token-vend refuses the report itself: the chain restarted below the reported
            // generation (the connection removed and added again, a table restore), or a broker
            // older than issue 11 knows no such field. Either way the report cannot be made, and
            // one plain vend serves what the broker has (exactFetch's one retry needs a token).
            .catch((error: unknown) => {
              if (!(error instanceof ValidationError)) throw error;
              return this.#invoker.invoke(functionName, plain);
            });
    const promise = invoked
      .then((text) => parseVendAnswer(text, this.#now()))
      .then(
        (entry) => {
          slot.cached = entry;
          slot.flight = undefined;
          answered();
          return entry;
        },
        (error: unknown) => {
          slot.flight = undefined;
          if (error instanceof ValidationError) answered();
          throw error;
        },
      );
    slot.flight = { minValiditySeconds, rejectedGeneration, promise };
    return promise;
  }
}
