import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Broker } from "../broker.js";
import { type ChainRecord, ConnectionMode } from "../chain/chain-record.js";
import type { ChainStore } from "../chain/chain-store.js";
import type { EngineLog } from "../chain/engine-deps.js";
import type { Onboarding, SeedResult } from "../chain/onboarding.js";
import { ConfigurationError, ConnectionNotFound, ValidationError } from "../errors.js";
import { checkBaseUrl } from "../exact/base-url.js";
import { ConnectRefused, RefusalReason } from "./connect-refused.js";
import { ConnectPath, callbackUrlFor, connectUrlOf, normalizeConnectUrl, sameUrl } from "./connect-url.js";
import type { LinkKeySource } from "./link-key-source.js";
import {
  LINK_TTL_SECONDS,
  newNonce,
  STATE_TTL_SECONDS,
  signLink,
  signState,
  verifyLink,
  verifyState,
} from "./link-signing.js";
import { NonceMarker, NonceStore } from "./nonce-store.js";

/** A one-time link for the person who authorizes a connection at Exact. */
export interface ConnectLink {
  readonly connectionId: string;
  readonly url: string;
  /** ISO 8601. */
  readonly expiresAt: string;
  readonly expiresAtEpochSec: number;
}

/** What `/start` answers: a redirect to Exact's authorization page. */
export interface StartAnswer {
  readonly connectionId: string;
  /** Exact's `/api/oauth2/auth` with client ID, redirect URI and the signed state. */
  readonly location: string;
}

/** Everything the flow does I/O with; {@link createConnectFlow} builds it from a broker. */
export interface ConnectFlowDeps {
  readonly store: ChainStore;
  readonly onboarding: Pick<Onboarding, "seed">;
  readonly nonces: NonceStore;
  readonly keys: LinkKeySource;
  readonly now: () => number;
  /** Admit http://127.0.0.1 connect URLs and base URLs (local runs, the simulator). */
  readonly allowLoopback: boolean;
  readonly log: EngineLog;
}

type Query = Readonly<Record<string, string | undefined>>;

/** Exact's `error_description` is shown on the page; a bound keeps a hostile one short. */
const MAX_EXACT_ERROR_LENGTH = 200;

function redirectMismatchMessage(record: ChainRecord, callbackUrl: string): string {
  return (
    `connection "${record.connectionId}" has redirect URI ${record.redirectUri}, but this connect function's ` +
    `callback is ${callbackUrl}. Register ${callbackUrl} as the app's redirect URI in Exact's App Center, ` +
    `then remove the connection and add it again with --redirect-uri ${callbackUrl}`
  );
}

/**
 * The first consent of a `code` connection, as three steps:
 *
 *   operator: createConnectLink ──► one-time link (HMAC, 15 min, nonce)
 *   browser:  GET /start ──► claim "opened" ──► 302 to Exact with a signed state (15 min)
 *   Exact:    GET /callback?code&state ──► claim "completed" ──► onboarding.seed ──► result
 *
 * Every refusal happens before anything is written, except the two single-use markers, which
 * are claimed just before the step they guard: a refused link stays usable once its cause is
 * fixed (a wrong redirect URI, say), a used one never is.
 */
export class ConnectFlow {
  readonly #deps: ConnectFlowDeps;

  constructor(deps: ConnectFlowDeps) {
    this.#deps = deps;
  }

  /**
   * Makes a one-time link for a `code` connection. Without `connectUrl` it is taken from the
   * connection's redirect URI (which must be `<connect URL>/callback` anyway).
   * @throws ConnectionNotFound, ValidationError (not a code connection, redirect URI mismatch)
   */
  async createConnectLink(args: {
    readonly connectionId: string;
    readonly connectUrl?: string;
    readonly nowMs?: number;
  }): Promise<ConnectLink> {
    const record = await this.#deps.store.get(args.connectionId);
    if (!record) throw new ConnectionNotFound(`connection "${args.connectionId}" does not exist`);
    if (record.mode !== ConnectionMode.Code) {
      throw new ValidationError(
        `connection "${record.connectionId}" is in ${record.mode} mode; only code connections are connected through a link`,
      );
    }
    const connectUrl =
      args.connectUrl === undefined
        ? connectUrlOf(record)
        : normalizeConnectUrl(args.connectUrl, this.#deps.allowLoopback);
    if (connectUrl === undefined) {
      throw new ValidationError(
        `connection "${record.connectionId}" has redirect URI ${record.redirectUri}, which is not <connect URL>/callback; ` +
          `remove it and add it again with --redirect-uri <connect URL>/callback, registered in Exact's App Center`,
      );
    }
    const callbackUrl = callbackUrlFor(connectUrl);
    if (!sameUrl(callbackUrl, record.redirectUri)) {
      throw new ValidationError(redirectMismatchMessage(record, callbackUrl));
    }
    const nowMs = args.nowMs ?? this.#deps.now();
    const expiresAtEpochSec = Math.floor(nowMs / 1000) + LINK_TTL_SECONDS;
    const query = signLink(await this.#deps.keys.get(), {
      connectionId: record.connectionId,
      nonce: newNonce(),
      expiresAtEpochSec,
    });
    return {
      connectionId: record.connectionId,
      url: `${connectUrl}${ConnectPath.Start}?${new URLSearchParams({ ...query })}`,
      expiresAt: new Date(expiresAtEpochSec * 1000).toISOString(),
      expiresAtEpochSec,
    };
  }

  /**
   * `/start`: verifies the link, claims its "opened" marker, and sends the browser to Exact.
   * @param connectUrl the URL this request came in on, to check the connection's redirect URI
   * @throws ConnectRefused for anything wrong with the link or the connection's setup
   */
  async start(query: Query, connectUrl: string): Promise<StartAnswer> {
    const { nonces, store, keys, now, log } = this.#deps;
    const key = await keys.get();
    const nowMs = now();
    const claims = verifyLink(key, query, nowMs);
    const { connectionId } = claims;
    const record = await store.get(connectionId);
    if (!record) {
      throw new ConnectRefused(
        RefusalReason.ConnectionGone,
        "link",
        `connection "${connectionId}" no longer exists`,
        { connectionId },
      );
    }
    if (record.mode !== ConnectionMode.Code) {
      throw new ConnectRefused(
        RefusalReason.NotCodeMode,
        "link",
        `connection "${connectionId}" is in ${record.mode} mode and is not connected through a link`,
        { connectionId },
      );
    }
    const callbackUrl = callbackUrlFor(connectUrl);
    if (!sameUrl(callbackUrl, record.redirectUri)) {
      throw new ConnectRefused(
        RefusalReason.RedirectMismatch,
        "link",
        redirectMismatchMessage(record, callbackUrl),
        {
          connectionId,
        },
      );
    }
    let baseUrl: string;
    try {
      baseUrl = checkBaseUrl(record.baseUrl, this.#deps.allowLoopback);
    } catch (error) {
      throw new ConfigurationError(`connection "${connectionId}" has a base URL that is not Exact's`, {
        cause: error,
      });
    }
    const claimed = await nonces.claim({
      nonce: claims.nonce,
      marker: NonceMarker.Opened,
      connectionId,
      validUntilEpochSec: claims.expiresAtEpochSec,
      nowMs,
    });
    if (!claimed) {
      throw new ConnectRefused(
        RefusalReason.Used,
        "link",
        `this connect link for connection "${connectionId}" was opened before; a link works once`,
        { connectionId },
      );
    }
    const state = signState(key, {
      connectionId,
      nonce: claims.nonce,
      expiresAtEpochSec: Math.floor(nowMs / 1000) + STATE_TTL_SECONDS,
    });
    const params = new URLSearchParams({
      client_id: record.clientId,
      redirect_uri: record.redirectUri,
      response_type: "code",
      state,
      force_login: "0",
    });
    log.info("connect link opened; sent to Exact to authorize", { connectionId });
    return { connectionId, location: `${baseUrl}/api/oauth2/auth?${params}` };
  }

  /**
   * `/callback`: verifies the state, claims its "completed" marker, and seeds the chain with
   * the code (same duplicate rule as `connection seed`: see {@link SeedResult.redirectedFrom}).
   * @param deadlineMs epoch ms by which the invocation must be done (the Lambda's remaining time)
   * @throws ConnectRefused for a bad, expired or used state and for Exact's `?error=`;
   *   whatever `seed` throws (ValidationError for a refused code, ExactUnavailable, …)
   */
  async complete(query: Query, deadlineMs?: number): Promise<SeedResult> {
    const { nonces, keys, now, onboarding, log } = this.#deps;
    const nowMs = now();
    const claims = verifyState(await keys.get(), query.state, nowMs);
    const { connectionId } = claims;
    const code = query.code;
    if (query.error === undefined && !code) {
      throw new ConnectRefused(
        RefusalReason.Malformed,
        "state",
        "Exact's answer carries neither a code nor an error",
        {
          connectionId,
        },
      );
    }
    const claimed = await nonces.claim({
      nonce: claims.nonce,
      marker: NonceMarker.Completed,
      connectionId,
      validUntilEpochSec: claims.expiresAtEpochSec,
      nowMs,
    });
    if (!claimed) {
      throw new ConnectRefused(
        RefusalReason.Used,
        "state",
        `this authorization for connection "${connectionId}" was completed before`,
        { connectionId },
      );
    }
    if (query.error !== undefined || !code) {
      const detail = [query.error, query.error_description]
        .filter(Boolean)
        .join(": ")
        .slice(0, MAX_EXACT_ERROR_LENGTH);
      throw new ConnectRefused(
        RefusalReason.ExactDeclined,
        "state",
        `Exact did not authorize connection "${connectionId}" (${detail})`,
        { connectionId },
      );
    }
    const result = await onboarding.seed(connectionId, code, deadlineMs !== undefined ? { deadlineMs } : {});
    log.info("connect flow completed", {
      connectionId: result.connectionId,
      requestedFor: connectionId,
      generation: result.generation,
    });
    return result;
  }
}

/** Options for {@link createConnectFlow}. */
export interface ConnectFlowOptions {
  readonly keys: LinkKeySource;
  /** For the nonce markers. @default a new DynamoDBClient (pass the broker's, to share it) */
  readonly dynamo?: DynamoDBClient;
  /** @default the broker's clock */
  readonly now?: () => number;
  /** @default the broker's log */
  readonly log?: EngineLog;
}

/** A connect flow over a broker's store, onboarding door, clock and table. */
export function createConnectFlow(broker: Broker, options: ConnectFlowOptions): ConnectFlow {
  return new ConnectFlow({
    store: broker.deps.store,
    onboarding: broker.onboarding,
    nonces: new NonceStore({
      tableName: broker.config.tableName,
      ...(options.dynamo ? { client: options.dynamo } : {}),
    }),
    keys: options.keys,
    now: options.now ?? broker.deps.now,
    allowLoopback: broker.config.allowLoopback,
    log: options.log ?? broker.deps.log,
  });
}
