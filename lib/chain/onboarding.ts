import {
  ConnectionNotFound,
  ExactUnavailable,
  ReauthRequired,
  Throttled,
  ValidationError,
} from "../errors.js";
import { checkBaseUrl } from "../exact/base-url.js";
import type { TokenOutcome } from "../exact/classify-token-response.js";
import { ChainStatus } from "./chain-record.js";
import type { EngineDeps } from "./engine-deps.js";
import { windowOpensAtMs } from "./timing.js";
import { dueAfterCommit, hashToken } from "./token-protocol.js";

export interface SeedResult {
  /** The connection that now holds the chain. */
  readonly connectionId: string;
  /** Set when the code was for a user another connection already holds: the tokens went there. */
  readonly redirectedFrom?: string;
  readonly exactUserId: string;
  readonly exactUserName: string;
  readonly division: number | null;
  readonly generation: number;
}

/**
 * Starts a chain from an authorization code (`connection seed`, the connect callback).
 *
 * The one accepted exception to "one lease per chain": the Exact user is only known after the
 * exchange, and Exact itself starts a new chain at that moment, killing the old one. So the new
 * tokens must land on the connection that owns (client ID, user), even if the code was meant
 * for another connection; the caller reports that.
 */
export class Onboarding {
  readonly #deps: EngineDeps;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  async seed(connectionId: string, code: string): Promise<SeedResult> {
    const { store, secrets, oauth, cipher, config, now, log } = this.#deps;
    const record = await store.get(connectionId);
    if (!record) throw new ConnectionNotFound(`connection "${connectionId}" does not exist`);
    checkBaseUrl(record.baseUrl, config.allowLoopback);
    const { clientSecret } = await secrets.get(record.secretId);
    const outcome = await oauth.exchangeCode(
      record.baseUrl,
      { clientId: record.clientId, clientSecret },
      code,
      record.redirectUri,
      config.httpTimeoutMs,
    );
    if (outcome.kind !== "tokens") throw codeRefused(outcome, connectionId);
    const arrivalMs = now();
    const { accessToken, refreshToken, expiresInSeconds } = outcome.rotated;
    const me = await oauth.me(record.baseUrl, accessToken, config.httpTimeoutMs);

    const owner = await store.claimGuard(record.clientId, me.userId, connectionId);
    const target = owner === connectionId ? record : await store.get(owner);
    if (!target)
      throw new ConnectionNotFound(
        `connection "${owner}" holds Exact user ${me.userName} but is gone; retry`,
      );
    if (owner === connectionId && record.exactUserId && record.exactUserId !== me.userId) {
      // Re-seeded with another Exact user: the old user's chain is no longer ours.
      await store.releaseGuard(record.clientId, record.exactUserId, connectionId);
    }

    const binding = { connectionId: target.connectionId };
    const window = windowOpensAtMs(arrivalMs, expiresInSeconds, config);
    const generation = await store.storeNewChain(
      target.connectionId,
      {
        refresh: {
          refreshCt: await cipher.encrypt(refreshToken, { ...binding, kind: "refresh" }),
          refreshHash: hashToken(refreshToken),
          refreshIssuedAtMs: arrivalMs,
        },
        access: {
          accessCt: await cipher.encrypt(accessToken, { ...binding, kind: "access" }),
          accessIssuedAtMs: arrivalMs,
          accessExpiresAtMs: arrivalMs + expiresInSeconds * 1000,
          windowOpensAtMs: window,
        },
      },
      {
        status: ChainStatus.Active,
        statusChangedAtMs: arrivalMs,
        exactUserId: me.userId,
        exactUserName: me.userName,
        division: me.division,
        ...dueAfterCommit(target, undefined, arrivalMs, config.keepaliveDays, arrivalMs),
      },
    );
    log.info("chain started from an authorization code", {
      connectionId: target.connectionId,
      requestedFor: connectionId,
      generation,
      division: me.division,
    });
    return {
      connectionId: target.connectionId,
      ...(owner !== connectionId ? { redirectedFrom: connectionId } : {}),
      exactUserId: me.userId,
      exactUserName: me.userName,
      division: me.division,
      generation,
    };
  }
}

function codeRefused(outcome: Exclude<TokenOutcome, { kind: "tokens" }>, connectionId: string): Error {
  switch (outcome.kind) {
    case "client_rejected":
      return new ReauthRequired(
        `Exact rejected the client ID or secret of connection "${connectionId}"; fix its secret`,
      );
    case "rate_limited":
    case "too_early":
      return new Throttled("Exact rate-limited the code exchange", { retryAfterSeconds: 60 });
    case "unavailable":
      if (outcome.status !== undefined && outcome.status < 500) break;
      return new ExactUnavailable(`Exact token endpoint unavailable (${outcome.detail})`, {
        retryAfterSeconds: 5,
      });
    case "outcome_unknown":
      return new ExactUnavailable(
        "the code exchange got no answer; Exact may have started a chain: get a new code and seed again",
        { retryAfterSeconds: 5 },
      );
    default:
  }
  return new ValidationError(
    `Exact refused the authorization code for connection "${connectionId}": it is single-use, valid for 3 minutes and bound to the redirect URI; get a new one`,
  );
}
