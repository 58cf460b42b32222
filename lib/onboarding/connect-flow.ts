import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Broker } from "../broker.js";
import { type ChainRecord, ConnectionMode } from "../chain/chain-record.js";
import type { ChainStore } from "../chain/chain-store.js";
import type { EngineLog } from "../chain/engine-deps.js";
import { HistoryDoor } from "../chain/history-entry.js";
import type { Onboarding, SeedResult } from "../chain/onboarding.js";
import { ConfigurationError, ConnectionNotFound, ValidationError } from "../errors.js";
import { checkBaseUrl } from "../exact/base-url.js";
import {
  BindingCheck,
  checkBrowserBinding,
  clearingCookie,
  newBindingCookie,
  presentedBinding,
} from "./browser-binding.js";
import {
  type AcceptedCallback,
  type ConfirmAnswer,
  type ConnectLink,
  exactReply,
  type StartAnswer,
} from "./connect-answers.js";
import { ConnectRefused, RefusalReason } from "./connect-refused.js";
import { ConnectPath, callbackUrlFor, connectUrlOf, normalizeConnectUrl, sameUrl } from "./connect-url.js";
import type { LinkKeySource } from "./link-key-source.js";
import {
  LINK_TTL_SECONDS,
  type LinkQuery,
  newNonce,
  type SignedClaims,
  STATE_TTL_SECONDS,
  signLink,
  signState,
  verifyLink,
  verifyState,
} from "./link-signing.js";
import { NonceMarker, NonceStore } from "./nonce-store.js";

/** The checks a link passes before its page or its POST: the connection it is for, and its Exact. */
interface CheckedLink {
  /** The link key, read once per request. */
  readonly key: Buffer;
  readonly claims: SignedClaims;
  readonly record: ChainRecord;
  readonly baseUrl: string;
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

function redirectMismatchMessage(record: ChainRecord, callbackUrl: string): string {
  return (
    `connection "${record.connectionId}" has redirect URI ${record.redirectUri}, but this connect function's ` +
    `callback is ${callbackUrl}. Register ${callbackUrl} as the app's redirect URI in Exact's App Center, ` +
    `then remove the connection and add it again with --redirect-uri ${callbackUrl}`
  );
}

/**
 * The first consent of a `code` connection, as four steps:
 *
 *   operator: createConnectLink ──► one-time link (HMAC, 15 min, nonce)
 *   browser:  GET /start ──► confirm: a page with a button + cookie __Host-connect-<nonce>;
 *             nothing claimed (previews welcome)
 *   browser:  POST /start + that cookie ──► start: claim "opened" ──► 303 to Exact with a
 *             state (15 min) signed over the cookie's hash
 *   Exact:    GET /callback?code&state ──► accept: state, not used, same browser, claim
 *             "completed" ──► complete: onboarding.seed ──► result (the cookie is cleared)
 *
 * Every refusal happens before anything is written, except the two single-use markers, which
 * are claimed just before the step they guard: a refused link stays usable once its cause is
 * fixed (a wrong redirect URI, say), a used one never is; a state refused in another browser
 * stays usable in the one that started it.
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
   * `GET /start` (and `HEAD`): verifies the link and the connection's setup and returns what the
   * confirmation page shows, with a fresh browser-binding cookie. Claims and writes nothing, so a
   * chat or mail client's link preview, a scanner or a prefetch spends nothing (a cookie it gets
   * binds nothing: only the browser that posts the button binds the state, to its own cookie).
   * @param connectUrl the URL this request came in on, to check the connection's redirect URI
   * @throws ConnectRefused for a bad, expired or already used link, or the connection's setup
   */
  async confirm(query: Query, connectUrl: string): Promise<ConfirmAnswer> {
    const { claims, baseUrl } = await this.#checkLink(query, connectUrl);
    // A read, not a claim: an opened link says so at once instead of showing a button that fails.
    if (await this.#deps.nonces.isClaimed(claims.nonce, NonceMarker.Opened)) throw usedLink(claims);
    // The button may be pressed until the link expires, and the state signed then lives on
    // STATE_TTL_SECONDS: the cookie lasts both, so the POST sets none of its own.
    const linkSecondsLeft = claims.expiresAtEpochSec - Math.floor(this.#deps.now() / 1000);
    return {
      connectionId: claims.connectionId,
      form: signedFields(query),
      exactOrigin: new URL(baseUrl).origin,
      expiresAt: new Date(claims.expiresAtEpochSec * 1000).toISOString(),
      bindingCookie: newBindingCookie(claims.nonce, Math.max(0, linkSecondsLeft) + STATE_TTL_SECONDS),
    };
  }

  /**
   * `POST /start`, the confirmation page's button: verifies the link (the form carries it),
   * requires the cookie the page set in this browser, claims the link's "opened" marker, and
   * sends the browser to Exact with a state bound to SHA-256 of that cookie's value.
   *
   * The cookie is also the CSRF defence, so no token is added: it is SameSite=Lax, which a
   * browser sends on a same-site POST (the page's own form) but on a cross-site request only for
   * a top-level navigation with a safe method, never a POST (RFC 6265bis, SameSite "Lax"
   * enforcement; Chrome's "Lax-allowing-unsafe" leniency covers only cookies set without a
   * SameSite attribute). So a page elsewhere that makes a browser post the link's fields is
   * refused before anything is claimed, even if it first navigated that browser to the link;
   * and a form posted from a browser that never opened the link has no cookie either.
   * @param form the posted fields (`c`, `n`, `e`, `s`, as in the link's query)
   * @param cookies the Function URL event's `cookies` (`name=value` each)
   * @param connectUrl the URL this request came in on, to check the connection's redirect URI
   * @throws ConnectRefused for anything wrong with the link or the connection's setup, `used`,
   *   and `browser_cookie_missing` (no cookie of this link came with the POST)
   */
  async start(form: Query, cookies: readonly string[] | undefined, connectUrl: string): Promise<StartAnswer> {
    const { nonces, now, log } = this.#deps;
    const { key, claims, record, baseUrl } = await this.#checkLink(form, connectUrl);
    const { connectionId } = claims;
    // Before the cookie check, so a replayed POST says "used" in any browser, as the page would.
    if (await nonces.isClaimed(claims.nonce, NonceMarker.Opened)) throw usedLink(claims);
    const browserBinding = presentedBinding(cookies, claims.nonce);
    if (browserBinding === undefined) {
      throw new ConnectRefused(
        RefusalReason.BrowserCookieMissing,
        "link",
        `this browser did not open the connect link for connection "${connectionId}" (its cookie is missing)`,
        { connectionId },
      );
    }
    const nowMs = now();
    const claimed = await nonces.claim({
      nonce: claims.nonce,
      marker: NonceMarker.Opened,
      connectionId,
      validUntilEpochSec: claims.expiresAtEpochSec,
      nowMs,
    });
    if (!claimed) throw usedLink(claims);
    const state = signState(key, {
      connectionId,
      nonce: claims.nonce,
      expiresAtEpochSec: Math.floor(nowMs / 1000) + STATE_TTL_SECONDS,
      browserBinding,
    });
    const params = new URLSearchParams({
      client_id: record.clientId,
      redirect_uri: record.redirectUri,
      response_type: "code",
      state,
      force_login: "0",
    });
    log.info("connect link confirmed; sent to Exact to authorize", { connectionId });
    return { connectionId, location: `${baseUrl}/api/oauth2/auth?${params}` };
  }

  /**
   * `GET /callback`, Exact's redirect: verifies the state, refuses one used before, checks that
   * this browser started the attempt (its binding cookie), then claims the "completed" marker.
   * Everything before the claim changes nothing, so a refused callback leaves the real one
   * usable in the browser that started it. No call to Exact happens here.
   * @param cookies the Function URL event's `cookies` (`name=value` each)
   * @throws ConnectRefused (malformed, bad_signature, expired, used, browser_cookie_missing,
   *   browser_cookie_mismatch)
   */
  async accept(query: Query, cookies: readonly string[] | undefined): Promise<AcceptedCallback> {
    const { nonces, keys, now } = this.#deps;
    const nowMs = now();
    const claims = verifyState(await keys.get(), query.state, nowMs);
    const { connectionId } = claims;
    const reply = exactReply(query);
    if (reply === undefined) {
      throw new ConnectRefused(
        RefusalReason.Malformed,
        "state",
        "Exact's answer carries neither a code nor an error",
        { connectionId },
      );
    }
    // Before the browser check, so a replay says "used" in any browser rather than "other browser".
    if (await nonces.isClaimed(claims.nonce, NonceMarker.Completed)) throw usedState(claims);
    const binding = checkBrowserBinding(cookies, claims.nonce, claims.browserBinding);
    if (binding !== BindingCheck.Match) {
      const missing = binding === BindingCheck.Missing;
      throw new ConnectRefused(
        missing ? RefusalReason.BrowserCookieMissing : RefusalReason.BrowserCookieMismatch,
        "state",
        missing
          ? `this authorization for connection "${connectionId}" was not started in this browser (its cookie is missing)`
          : `this authorization for connection "${connectionId}" was started in another browser (its cookie does not match)`,
        { connectionId },
      );
    }
    const claimed = await nonces.claim({
      nonce: claims.nonce,
      marker: NonceMarker.Completed,
      connectionId,
      validUntilEpochSec: claims.expiresAtEpochSec,
      nowMs,
    });
    if (!claimed) throw usedState(claims);
    return { connectionId, reply, clearCookie: clearingCookie(claims.nonce) };
  }

  /**
   * Finishes an accepted callback: seeds the chain with Exact's code (same duplicate rule as
   * `connection seed`: see {@link SeedResult.redirectedFrom}).
   * @param deadlineMs epoch ms by which the invocation must be done (the Lambda's remaining time)
   * @throws ConnectRefused (exact_declined) for Exact's `?error=`; whatever `seed` throws
   *   (ValidationError for a refused code, ExactUnavailable, …)
   */
  async complete(accepted: AcceptedCallback, deadlineMs?: number): Promise<SeedResult> {
    const { onboarding, log } = this.#deps;
    const { connectionId, reply } = accepted;
    if (reply.kind === "declined") {
      throw new ConnectRefused(
        RefusalReason.ExactDeclined,
        "state",
        `Exact did not authorize connection "${connectionId}" (${reply.detail})`,
        { connectionId },
      );
    }
    const result = await onboarding.seed(connectionId, reply.code, {
      door: HistoryDoor.Connect,
      ...(deadlineMs !== undefined ? { deadlineMs } : {}),
    });
    log.info("connect flow completed", {
      connectionId: result.connectionId,
      requestedFor: connectionId,
      generation: result.generation,
    });
    return result;
  }

  /** Link, connection, mode, redirect URI and base URL: what both steps of `/start` require. */
  async #checkLink(query: Query, connectUrl: string): Promise<CheckedLink> {
    const { store, keys, now, allowLoopback } = this.#deps;
    const key = await keys.get();
    const claims = verifyLink(key, query, now());
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
        { connectionId },
      );
    }
    try {
      return { key, claims, record, baseUrl: checkBaseUrl(record.baseUrl, allowLoopback) };
    } catch (error) {
      throw new ConfigurationError(`connection "${connectionId}" has a base URL that is not Exact's`, {
        cause: error,
      });
    }
  }
}

function usedLink(claims: SignedClaims): ConnectRefused {
  const { connectionId } = claims;
  return new ConnectRefused(
    RefusalReason.Used,
    "link",
    `this connect link for connection "${connectionId}" was used before; a link works once`,
    { connectionId },
  );
}

function usedState(claims: SignedClaims): ConnectRefused {
  const { connectionId } = claims;
  return new ConnectRefused(
    RefusalReason.Used,
    "state",
    `this authorization for connection "${connectionId}" was completed before`,
    { connectionId },
  );
}

/** The link's four signed fields, as verified (verifyLink checked each is present). */
function signedFields(query: Query): LinkQuery {
  return { c: query.c ?? "", n: query.n ?? "", e: query.e ?? "", s: query.s ?? "" };
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
