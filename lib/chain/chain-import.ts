import {
  ChainBusy,
  ConnectionNotFound,
  ExactUnavailable,
  ReauthRequired,
  Throttled,
  UserBlocked,
  ValidationError,
} from "../errors.js";
import { checkBaseUrl } from "../exact/base-url.js";
import {
  EXACT_ACCESS_TOKEN_SECONDS,
  type IssuedTokens,
  type TokenOutcome,
} from "../exact/classify-token-response.js";
import { type ChainRecord, ChainStatus, ConnectionMode, LeasePurpose } from "./chain-record.js";
import { chainStartResult, operatorStartNote, readyForChainStart, type SeedResult } from "./chain-start.js";
import { LeaseRefused } from "./chain-store.js";
import type { EngineDeps } from "./engine-deps.js";
import { type HistoryContext, HistoryDoor } from "./history-entry.js";
import { IdentityCheck, type VerifyOutcome } from "./identity-check.js";
import type { LeaseSession } from "./lease-session.js";
import { backedOff } from "./lease-transitions.js";
import { windowOpensAtMs } from "./timing.js";
import { capReached, warnIfHigh } from "./token-call-cap.js";
import { exactErrors } from "./token-refusals.js";
import { prepareSealer, sealTokens } from "./token-seal.js";
import { PendingVerification } from "./verification.js";

/** How an import ended, when it did not throw. */
export type ImportOutcome =
  /** Exact refreshed the token; the chain is stored and its identity check passed (or it went to the user's holder). */
  | { readonly kind: "imported"; readonly result: SeedResult }
  /** Refused before anything was sent: the connection was connected before, and `replace` was not given. */
  | { readonly kind: "holds_chain"; readonly status: ChainStatus; readonly generation: number }
  /** Exact refused the token as dead or unknown to this app (`reason`: a DeadReason); nothing was stored. */
  | { readonly kind: "token_refused"; readonly reason: string }
  /**
   * Exact refused the refresh as too early: the other system refreshed less than 570 s ago.
   * `retryAtMs` (epoch ms): when Exact accepts it at the latest, if nothing refreshes meanwhile.
   * `stored`: the refusal carried a new refresh token anyway, which is stored (VERIFYING) and
   * finished by the broker itself at that time.
   */
  | { readonly kind: "too_early"; readonly retryAtMs: number; readonly stored: boolean }
  /** Sent, no answer: the imported token is stored SUSPECT; its first token call is the probe. */
  | { readonly kind: "unknown_outcome"; readonly generation: number };

/** What the lease's work decided; the identity check is turned into the operator's answer after it. */
type Settled =
  | Exclude<ImportOutcome, { kind: "imported" }>
  | { readonly kind: "checked"; readonly outcome: VerifyOutcome };

/**
 * Takes over a live chain from another system (`exact-broker connection import`): one refresh of
 * its refresh token, at once, under the connection's lease, so the other system's copy dies at
 * that moment. Exact's answer is then a chain start like a seed's (chain-start.ts): stored first
 * by one conditional write (VERIFYING, the live chain it replaces kept beside it; the key
 * material prepared before the call), then `/current/Me` decides whose it is, the guard rule
 * applies and the division is pinned (identity-check.ts). A refusal that still carried a refresh
 * token is stored all the same (invariant 13); an unknown outcome stores the imported token
 * itself, SUSPECT, so the probe rules apply (invariant 5). Dead tokens change nothing.
 */
export class ChainImport {
  readonly #deps: EngineDeps;
  readonly #identity: IdentityCheck;
  readonly #verification: PendingVerification;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#identity = new IdentityCheck(deps);
    this.#verification = new PendingVerification(deps);
  }

  /**
   * @param refreshToken the other system's live refresh token (never logged, never in an error)
   * @param options.replace also import into a connection that was connected before (any status but NEW)
   * @param options.deadlineMs epoch ms by which the import must be done
   * @throws ConnectionNotFound; ValidationError (an empty token, an implicit-mode connection);
   *   ReauthRequired (the app's client secret rejected); UserBlocked (Exact refuses the token's
   *   user); ExactUnavailable / Throttled (Exact did not process the refresh, or the new chain is
   *   stored and its check is pending); ChainBusy (another holder); every retryable error carries
   *   retryAfterSeconds
   */
  async import(
    connectionId: string,
    refreshToken: string,
    options: { readonly replace?: boolean; readonly deadlineMs?: number } = {},
  ): Promise<ImportOutcome> {
    const { secrets, config, owner, store } = this.#deps;
    if (refreshToken === "") throw new ValidationError("the refresh token to import is empty");
    const found = await store.get(connectionId);
    if (!found) throw new ConnectionNotFound(`connection "${connectionId}" does not exist`);
    if (found.mode !== ConnectionMode.Code) {
      throw new ValidationError(
        `connection "${connectionId}" is in implicit mode: it never holds a refresh token; import into a code-mode connection`,
      );
    }
    const refused = holdsChain(found, options.replace);
    if (refused) return refused;
    const history: HistoryContext = { door: HistoryDoor.Import, keepDays: config.historyDays };
    const deadline = options.deadlineMs !== undefined ? { deadlineMs: options.deadlineMs } : {};
    const record = await readyForChainStart(
      this.#deps,
      this.#verification,
      connectionId,
      options.deadlineMs,
      history,
    );
    checkBaseUrl(record.baseUrl, config.allowLoopback);
    const clientSecret = await secrets.clientSecret(record.secretId);
    const settled = await store.withLease(
      { record, owner, purpose: LeasePurpose.Onboard, leaseMs: config.leaseMs, ...deadline, history },
      async (session): Promise<Settled> => {
        // The item as it was at the acquire decides: a chain may have been started since our read.
        const late = holdsChain(session.record, options.replace);
        if (late) return late;
        try {
          return await this.#refresh(session, refreshToken, clientSecret);
        } finally {
          // The refresh is a token call: after the writes that recorded it (token-call-cap.ts).
          await warnIfHigh(this.#deps, session);
        }
      },
    );
    if (settled === LeaseRefused) {
      throw new ChainBusy(`connection "${connectionId}" is busy; nothing was sent; try again`, {
        retryAfterSeconds: 5,
      });
    }
    if (settled.kind === "checked") {
      return { kind: "imported", result: await chainStartResult(this.#deps, connectionId, settled.outcome) };
    }
    return settled;
  }

  /** The one refresh and the write that records it, then the identity check of what it stored. */
  async #refresh(session: LeaseSession, refreshToken: string, clientSecret: string): Promise<Settled> {
    const { cipher, oauth, config, now, log } = this.#deps;
    const record = session.record;
    const sealer = await prepareSealer(cipher, {
      connectionId: record.connectionId,
      incarnation: session.incarnation,
    });
    session.requireTime(config.httpTimeoutMs, "the import's refresh");
    const capped = capReached(record.connectionId, session.tokenCallsToday, now());
    if (capped) throw capped;
    session.callStarted({ tokenEndpoint: true });
    // When the request that made this chain ours left: of two starts of one user, the later is live.
    const sentAtMs = now();
    const outcome = await oauth.refresh(
      record.baseUrl,
      { clientId: record.clientId, clientSecret },
      refreshToken,
      config.httpTimeoutMs,
    );
    const arrivalMs = now();
    const note = operatorStartNote(record, sentAtMs);
    if (outcome.kind === "outcome_unknown") {
      // Exact may have rotated the chain (the answer is what was lost) or not (the token still
      // lives): only a probe with the imported token tells.
      const tokens = await sealTokens(sealer, { refreshToken }, arrivalMs, ConnectionMode.Code, config);
      await this.#store(session, { tokens, note, leaseMs: config.leaseMs, unknownOutcome: true });
      log.warn("the import's refresh got no answer; the imported token is stored SUSPECT", {
        connectionId: record.connectionId,
        generation: session.generation,
      });
      return { kind: "unknown_outcome", generation: session.generation };
    }
    const retryAtMs = windowOpensAtMs(arrivalMs, EXACT_ACCESS_TOKEN_SECONDS, config);
    if (!carriesRefreshToken(outcome)) {
      await session.release();
      return notRefreshed(outcome, record.connectionId, retryAtMs);
    }
    const { rotated } = outcome;
    const tokens = await sealTokens(sealer, rotated, arrivalMs, ConnectionMode.Code, config);
    await this.#store(session, {
      tokens,
      note,
      leaseMs: config.leaseMs,
      ...exactErrors(record, outcome, arrivalMs),
    });
    log.info("chain imported", {
      connectionId: record.connectionId,
      generation: session.generation,
      outcome: outcome.kind,
    });
    if (outcome.kind === "too_early") {
      // Exact rotated while refusing: the new token is accepted once the other system's last
      // refresh is 570 s old, at the latest then. Until then it waits, with no call.
      await session.finish(
        backedOff({ backoffUntilMs: retryAtMs, backoffReason: "throttled" }, arrivalMs, {
          dueAtMs: retryAtMs,
        }),
      );
      return { kind: "too_early", retryAtMs, stored: true };
    }
    const { accessToken, expiresInSeconds } = rotated;
    if (outcome.kind !== "tokens" || !accessToken || !expiresInSeconds) {
      throw new ExactUnavailable(
        `connection "${record.connectionId}": Exact answered ${outcome.kind} with a new refresh token; the chain is stored and checked automatically (exact-broker status --id ${record.connectionId})`,
        { retryAfterSeconds: 60 },
      );
    }
    const checked = await this.#identity.run(
      session,
      { issued: { ...rotated, accessToken, expiresInSeconds }, tokens, note },
      { afterLogin: false, vended: false },
    );
    return { kind: "checked", outcome: checked };
  }

  /** The persisting write: what Exact returned (or the token sent, its outcome unknown) in first. */
  async #store(session: LeaseSession, args: Parameters<LeaseSession["storeStartedChain"]>[0]): Promise<void> {
    if (await session.storeStartedChain(args)) return;
    throw new ChainBusy(
      `connection "${session.connectionId}": the lease was lost before Exact's answer was stored; the other system's token may be used up: check exact-broker status --id ${session.connectionId} and connect it again if it is not ACTIVE`,
      { retryAfterSeconds: 5 },
    );
  }
}

/** An answer that carried a refresh token, whatever its status: Exact may have rotated the chain. */
function carriesRefreshToken(
  outcome: Exclude<TokenOutcome, { kind: "outcome_unknown" }>,
): outcome is typeof outcome & { readonly rotated: IssuedTokens } {
  return outcome.rotated !== undefined;
}

/** Refused unless `replace`: a connection connected before (any status but NEW). */
function holdsChain(
  record: ChainRecord,
  replace: boolean | undefined,
): Extract<ImportOutcome, { kind: "holds_chain" }> | undefined {
  if (replace || record.status === ChainStatus.New) return undefined;
  return { kind: "holds_chain", status: record.status, generation: record.generation };
}

/** An answer that carried no refresh token: the import's outcome, or the error the operator sees. */
function notRefreshed(
  outcome: Exclude<TokenOutcome, { kind: "tokens" } | { kind: "outcome_unknown" }>,
  connectionId: string,
  retryAtMs: number,
): Settled {
  const untouched = "nothing was stored and the token is still the other system's";
  switch (outcome.kind) {
    case "too_early":
      return { kind: "too_early", retryAtMs, stored: false };
    case "chain_dead":
      return { kind: "token_refused", reason: outcome.reason };
    case "client_rejected":
      throw new ReauthRequired(
        `Exact rejected the client ID or secret of connection "${connectionId}" (${outcome.scope ? "the app's scopes" : "invalid_client"}); fix its secret, then import again; ${untouched}`,
      );
    case "user_blocked":
      throw new UserBlocked(
        `Exact refuses the user of the imported token (${outcome.reason}); no login can fix that; ${untouched}`,
      );
    case "rate_limited":
      throw new Throttled(`Exact rate-limited the import's refresh; ${untouched}`, {
        retryAfterSeconds: outcome.retryAfterSeconds,
      });
    case "unavailable":
      throw new ExactUnavailable(
        `Exact did not process the import's refresh (${outcome.detail}); ${untouched}`,
        {
          retryAfterSeconds: outcome.retryAfterSeconds ?? 5,
        },
      );
  }
}
