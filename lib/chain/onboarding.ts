import { ChainBusy, ExactUnavailable, ReauthRequired, Throttled, ValidationError } from "../errors.js";
import { checkBaseUrl } from "../exact/base-url.js";
import type { TokenOutcome } from "../exact/classify-token-response.js";
import { ConnectionMode, LeasePurpose } from "./chain-record.js";
import { chainStartResult, operatorStartNote, readyForChainStart, type SeedResult } from "./chain-start.js";
import { LeaseRefused } from "./chain-store.js";
import type { EngineDeps } from "./engine-deps.js";
import { type HistoryContext, HistoryDoor } from "./history-entry.js";
import { IdentityCheck, type VerifyOutcome } from "./identity-check.js";
import type { LeaseSession } from "./lease-session.js";
import { capReached, warnIfHigh } from "./token-call-cap.js";
import { prepareSealer, sealTokens } from "./token-seal.js";
import { PendingVerification } from "./verification.js";

export type { SeedResult } from "./chain-start.js";

/**
 * Starts a chain from an authorization code (`connection seed`, the connect callback), under the
 * connection's lease like every other door. The Exact user is only known after the exchange, so
 * Exact's answer is stored on the connection being connected as VERIFYING (the live chain it
 * replaces is kept beside it), then `/current/Me` decides: this connection's chain, or the chain
 * of the connection that already holds that (client ID, user), which then receives it (the one
 * accepted exception to one-lease-per-chain: Exact itself ended that connection's old chain).
 * Each step is crash-safe: a VERIFYING chain found later is checked, not lost.
 */
export class Onboarding {
  readonly #deps: EngineDeps;
  readonly #identity: IdentityCheck;
  readonly #verification: PendingVerification;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#identity = new IdentityCheck(deps);
    this.#verification = new PendingVerification(deps);
  }

  /**
   * @throws ValidationError (the code was refused), ReauthRequired (client secret rejected),
   *   ChainBusy (another holder did not finish in time), ExactUnavailable / Throttled (Exact),
   *   ConnectionNotFound; every retryable error carries retryAfterSeconds
   */
  async seed(
    connectionId: string,
    code: string,
    options: {
      readonly deadlineMs?: number;
      /** Where the code came from, for the connection's history. @default seed (the CLI) */
      readonly door?: typeof HistoryDoor.Seed | typeof HistoryDoor.Connect;
    } = {},
  ): Promise<SeedResult> {
    const { secrets, config, owner, store } = this.#deps;
    const history: HistoryContext = { door: options.door ?? HistoryDoor.Seed, keepDays: config.historyDays };
    const record = await readyForChainStart(
      this.#deps,
      this.#verification,
      connectionId,
      options.deadlineMs,
      history,
    );
    checkBaseUrl(record.baseUrl, config.allowLoopback);
    const clientSecret = await secrets.clientSecret(record.secretId);
    const outcome = await store.withLease(
      {
        record,
        owner,
        purpose: LeasePurpose.Onboard,
        leaseMs: config.leaseMs,
        ...(options.deadlineMs !== undefined ? { deadlineMs: options.deadlineMs } : {}),
        history,
      },
      async (session) => {
        try {
          return await this.#exchange(session, code, clientSecret);
        } finally {
          // The exchange is a token call: after the writes that recorded it (token-call-cap.ts).
          await warnIfHigh(this.#deps, session);
        }
      },
    );
    if (outcome === LeaseRefused) {
      throw new ChainBusy(`connection "${connectionId}" is busy; try again`, { retryAfterSeconds: 5 });
    }
    return chainStartResult(this.#deps, connectionId, outcome);
  }

  async #exchange(session: LeaseSession, code: string, clientSecret: string): Promise<VerifyOutcome> {
    const { cipher, oauth, config, now, log } = this.#deps;
    const record = session.record;
    const sealer = await prepareSealer(cipher, {
      connectionId: record.connectionId,
      incarnation: session.incarnation,
    });
    session.requireTime(config.httpTimeoutMs, "the code exchange");
    const capped = capReached(record.connectionId, session.tokenCallsToday, now());
    if (capped) throw capped;
    session.callStarted({ tokenEndpoint: true });
    // When the request that starts the chain left: of two starts of one user, the later is live.
    const sentAtMs = now();
    const outcome = await oauth.exchangeCode(
      record.baseUrl,
      { clientId: record.clientId, clientSecret },
      code,
      record.redirectUri,
      config.httpTimeoutMs,
    );
    const rotated = outcome.kind === "outcome_unknown" ? undefined : outcome.rotated;
    if (!rotated) {
      // Nothing to store: a refused or unsent exchange started nothing; a lost one may have
      // started a chain we never saw, which the next refresh of the old one finds out.
      await session.release();
      throw codeRefused(outcome, record.connectionId);
    }
    const arrivalMs = now();
    const tokens = await sealTokens(sealer, rotated, arrivalMs, ConnectionMode.Code, config);
    const note = operatorStartNote(record, sentAtMs);
    if (!(await session.storeStartedChain({ tokens, note, leaseMs: config.leaseMs }))) {
      throw new ChainBusy(
        `connection "${record.connectionId}": the lease was lost before Exact's answer was stored; get a new code and seed again`,
        { retryAfterSeconds: 5 },
      );
    }
    log.info("chain started from an authorization code", {
      connectionId: record.connectionId,
      generation: session.generation,
    });
    const { accessToken, expiresInSeconds } = rotated;
    if (outcome.kind !== "tokens" || !accessToken || !expiresInSeconds) {
      throw new ExactUnavailable(
        `connection "${record.connectionId}": the code exchange answered ${outcome.kind}; the new chain is stored and checked automatically (exact-broker status --id ${record.connectionId})`,
        { retryAfterSeconds: 60 },
      );
    }
    return this.#identity.run(
      session,
      { issued: { ...rotated, accessToken, expiresInSeconds }, tokens, note },
      { afterLogin: false, vended: false },
    );
  }
}

/** Why a code exchange gave no tokens, as the error the operator sees. */
function codeRefused(outcome: TokenOutcome, connectionId: string): Error {
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
