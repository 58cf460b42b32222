import type { PreparedSealer } from "../crypto/token-cipher.js";
import {
  type BrokerError,
  ReauthRequired,
  SecretUnavailable,
  Throttled,
  TokenDecryptError,
} from "../errors.js";
import { EventReason } from "../events/broker-events.js";
import { checkBaseUrl } from "../exact/base-url.js";
import {
  EXACT_ACCESS_TOKEN_SECONDS,
  type IssuedTokens,
  type TokenOutcome,
  UnavailableCause,
} from "../exact/classify-token-response.js";
import { type AppState, REJECTION_PROBE_MS } from "./app-states.js";
import { awaitsProbe, ChainStatus, ConnectionMode, healthyStatus, LeasePurpose } from "./chain-record.js";
import type { EngineDeps } from "./engine-deps.js";
import { budgetExhaustedFor } from "./error-budget.js";
import { cipherWorks } from "./incarnation.js";
import type { LeaseSession } from "./lease-session.js";
import { type Backoff, backedOff } from "./lease-transitions.js";
import { isOutage, OutagePacing } from "./outage-pacing.js";
import { refusalError } from "./refusal-errors.js";
import { windowOpensAtMs } from "./timing.js";
import { capReached, warnIfHigh } from "./token-call-cap.js";
import { exactErrors, markBroken, settleRefusal } from "./token-refusals.js";
import { dueAtAfter, prepareSealer, type SealedTokens, sealTokens } from "./token-seal.js";

/** The access token a holder obtained, in plaintext, for the caller that triggered the work. */
export interface FreshAccess {
  readonly accessToken: string;
  readonly expiresAtMs: number;
  readonly generation: number;
}

export type { ProtocolResult } from "./token-refusals.js";

import type { ProtocolResult } from "./token-refusals.js";

const SUPERSEDED: ProtocolResult = { kind: "superseded" };
const REFRESHABLE: ReadonlySet<ChainStatus> = new Set([
  ChainStatus.Active,
  ChainStatus.Suspect,
  ChainStatus.Verifying,
  ChainStatus.Blocked,
]);

/**
 * One refresh (or probe) under a lease: the token call and the one write that records its
 * outcome.
 *
 * Order matters: key material is prepared before the call, so a body carrying a refresh token is
 * sealed without I/O and persisted by the next write, before anything else (invariant 4); an
 * ambiguous outcome makes the chain SUSPECT and is never resent (invariant 5); the next holder of
 * a SUSPECT chain spends its one probe, and if the probe cannot prove the chain alive the chain
 * is BROKEN. Too-early never marks a chain dead (invariant 6).
 */
export class TokenProtocol {
  readonly #deps: EngineDeps;
  readonly #pacing: OutagePacing;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#pacing = new OutagePacing(deps);
  }

  /** Refreshes `session`'s chain; `vended` marks that a consumer is waiting (the chain is hot). */
  async refresh(session: LeaseSession, options: { readonly vended: boolean }): Promise<ProtocolResult> {
    const { now, config, log, cipher, secrets, oauth } = this.#deps;
    const record = session.record;
    // The lease was taken on an earlier read: the item as it was at the acquire (ALL_OLD) decides.
    // Another holder may have found the chain dead, or backed it off, in between.
    // A chain being handed to another connection is not refreshed here: that one may hold it already.
    if (!REFRESHABLE.has(record.status) || record.handOver || (record.backoffUntilMs ?? 0) > now()) {
      return SUPERSEDED;
    }
    const note = record.inflight;
    // A dead verifier only called /current/Me; any other dead holder may have rotated the chain.
    const staleCall = note !== undefined && note.purpose !== LeasePurpose.Verify;
    if (note?.purpose === LeasePurpose.Probe || (staleCall && awaitsProbe(record))) {
      log.warn("probe holder vanished without an answer; chain is broken", {
        connectionId: record.connectionId,
      });
      return markBroken(this.#deps, session, EventReason.LostAnswer);
    }
    if (staleCall || awaitsProbe(record)) {
      if (staleCall)
        log.warn("previous holder left a write-ahead note; probing", { connectionId: record.connectionId });
      // A BLOCKED chain stays BLOCKED while probed: Exact refuses its user whatever the probe finds.
      const probing = await session.renew(
        LeasePurpose.Probe,
        config.leaseMs,
        record.status === ChainStatus.Blocked
          ? undefined
          : { status: ChainStatus.Suspect, statusReason: EventReason.LostAnswer },
      );
      if (!probing) return SUPERSEDED;
    }

    const exhaustedFor = budgetExhaustedFor(record.tokenErrors, now());
    if (exhaustedFor !== undefined) {
      return failed(
        new Throttled(`error budget for connection "${record.connectionId}" is spent for this hour`, {
          retryAfterSeconds: exhaustedFor,
        }),
      );
    }
    const binding = { connectionId: record.connectionId, incarnation: session.incarnation };
    let refreshToken: string;
    try {
      refreshToken = await cipher.decrypt(record.refreshCt ?? "", { ...binding, kind: "refresh" });
    } catch (error) {
      if (!(error instanceof TokenDecryptError)) throw error;
      // The Encryption SDK reports a KMS outage like a bad ciphertext. Only when a fresh
      // round trip works is it this ciphertext that is bad, and the chain truly lost.
      if (!(await cipherWorks(this.#deps.cipher, binding))) {
        throw new Error("token encryption is unavailable (KMS?); the chain is untouched", { cause: error });
      }
      log.error("stored refresh token does not decrypt; chain is broken", {
        connectionId: record.connectionId,
      });
      return markBroken(this.#deps, session, EventReason.DecryptFailed);
    }
    let clientSecret: string;
    try {
      clientSecret = await secrets.clientSecret(record.secretId);
    } catch (error) {
      if (!(error instanceof SecretUnavailable)) throw error;
      return failed(
        new ReauthRequired(`${error.message}; fix the secret, then vend again`, { cause: error }),
      );
    }
    try {
      // The item could have been written by hand: the secret and refresh token go to Exact only.
      checkBaseUrl(record.baseUrl, config.allowLoopback);
    } catch (error) {
      return failed(new ReauthRequired(`connection "${record.connectionId}": ${(error as Error).message}`));
    }
    // One chain of the app asks Exact during an outage; an app Exact rejects stops calling.
    const gate = await this.#pacing.gate(session, clientSecret);
    if (gate.kind === "held") return gate.result;
    const capped = capReached(record.connectionId, session.tokenCallsToday, now());
    if (capped) return failed(capped);
    const sealer = await prepareSealer(cipher, {
      connectionId: record.connectionId,
      incarnation: session.incarnation,
    });
    session.requireTime(config.httpTimeoutMs, "a token call");

    const startedMs = now();
    session.callStarted({ tokenEndpoint: true });
    const call = (secret: string) =>
      oauth.refresh(
        record.baseUrl,
        { clientId: record.clientId, clientSecret: secret },
        refreshToken,
        config.httpTimeoutMs,
      );
    let outcome = await call(clientSecret);
    if (outcome.kind === "client_rejected" && !outcome.scope && !outcome.rotated) {
      // The app's secret may have been rotated in Exact's App Center and in ours since we cached
      // it: read it once more, and if it changed, try once more (invalid_client processed nothing).
      // A failed re-read leaves Exact's answer standing: it is recorded below and the lease ends
      // (thrown, it would leave the lease and its note, and the next holder would probe for nothing).
      const current = await secrets
        .clientSecret(record.secretId, { forceFetch: true })
        .catch((error: unknown) => {
          log.warn("could not read the client secret again after invalid_client", {
            connectionId: record.connectionId,
            error: error as Error,
          });
          return clientSecret;
        });
      if (
        current !== clientSecret &&
        session.remainingMs() >= config.httpTimeoutMs &&
        !capReached(record.connectionId, session.tokenCallsToday, now())
      ) {
        clientSecret = current;
        session.callStarted({ tokenEndpoint: true });
        outcome = await call(current);
      }
    }
    const arrivalMs = now();

    const logged = {
      connectionId: record.connectionId,
      outcome: outcome.kind,
      probe: session.purpose === LeasePurpose.Probe,
      latencyMs: arrivalMs - startedMs,
    };
    const result = await this.#settle(
      session,
      sealer,
      outcome,
      clientSecret,
      gate.app,
      arrivalMs,
      options.vended,
      logged,
    );
    await this.#pacing.after(record, gate.app, outcome, arrivalMs, clientSecret);
    await warnIfHigh(this.#deps, session);
    return result;
  }

  /** The one write that records Exact's answer (persisting the tokens it carried first). */
  async #settle(
    session: LeaseSession,
    sealer: PreparedSealer,
    outcome: TokenOutcome,
    clientSecret: string,
    app: AppState,
    arrivalMs: number,
    vended: boolean,
    logged: Record<string, unknown>,
  ): Promise<ProtocolResult> {
    const record = session.record;
    if (outcome.kind === "tokens") {
      const committed = await this.#commit(
        session,
        sealer,
        { issued: outcome.rotated, succeeded: true },
        arrivalMs,
        vended,
        undefined,
        logged,
      );
      if (!committed) return SUPERSEDED;
      const access = committed.access;
      const { accessToken } = outcome.rotated;
      // A rotation-only answer leaves no token to hand out: the vend asks again (vend-door.ts).
      // Nor does a chain still awaiting its identity check (a probed SUSPECT one among them).
      return {
        kind: "refreshed",
        fresh:
          access && accessToken && healthyStatus(record) === ChainStatus.Active
            ? { accessToken, expiresAtMs: access.accessExpiresAtMs, generation: session.generation }
            : undefined,
      };
    }
    if (outcome.kind !== "outcome_unknown" && outcome.rotated) {
      // A refusal that still carried a new refresh token: the chain advanced, and backs off.
      const refusal = {
        ...exactErrors(record, outcome, arrivalMs),
        backoffUntilMs: arrivalMs + 5_000,
        backoffReason:
          outcome.kind === "too_early" || outcome.kind === "rate_limited"
            ? ("throttled" as const)
            : ("unavailable" as const),
      };
      // A 5xx that carried a refresh token was a success the gateway failed; a refusal was none.
      const succeeded = outcome.kind === "unavailable" && outcome.cause === UnavailableCause.ServerError;
      const committed = await this.#commit(
        session,
        sealer,
        { issued: outcome.rotated, succeeded },
        arrivalMs,
        vended,
        refusal,
        logged,
      );
      return committed ? failed(refusalError(outcome, record.connectionId)) : SUPERSEDED;
    }
    this.#deps.log.info("token call answered", logged);
    if (outcome.kind === "client_rejected") {
      // The app, not the chain: one event for the app, its chains paced until the secret changes.
      const written = await session.finish(
        backedOff(
          {
            ...exactErrors(record, outcome, arrivalMs),
            backoffUntilMs: arrivalMs + REJECTION_PROBE_MS,
            backoffReason: "unavailable",
          },
          arrivalMs,
          { dueAtMs: arrivalMs + REJECTION_PROBE_MS },
        ),
      );
      if (!written) return SUPERSEDED;
      return failed(
        await this.#pacing.rejected(
          session,
          outcome.scope ? "scope_violated" : "invalid_client",
          clientSecret,
        ),
      );
    }
    return settleRefusal(this.#deps, session, outcome, arrivalMs, {
      app,
      ...(isOutage(outcome) ? { pacedUntilMs: this.#pacing.pacedUntilMs(app, outcome, arrivalMs) } : {}),
    });
  }

  /** Persist first: sealing is local (prepared keys), the commit is the next I/O. Undefined if superseded. */
  async #commit(
    session: LeaseSession,
    sealer: PreparedSealer,
    rotation: { readonly issued: IssuedTokens; readonly succeeded: boolean },
    arrivalMs: number,
    vended: boolean,
    refusal: Backoff | undefined,
    logged: Record<string, unknown>,
  ): Promise<SealedTokens | undefined> {
    const { config, log } = this.#deps;
    const record = session.record;
    const tokens = await sealTokens(sealer, rotation.issued, arrivalMs, ConnectionMode.Code, config);
    // A success that carried a refresh token but no access token: the chain advanced, and has no
    // access token until its next refresh (the stored one is the previous generation's). Exact
    // accepts that refresh only 570 s after this one succeeded (shared/exact-online.md), as if it
    // had brought a token of the documented 600 s. A refusal that rotated anyway (e.g. too early)
    // issued no access token: the stored one, and its window, stay.
    const windowAtMs =
      rotation.succeeded && !tokens.access
        ? windowOpensAtMs(arrivalMs, EXACT_ACCESS_TOKEN_SECONDS, config)
        : undefined;
    const timing = windowAtMs === undefined ? record : { ...record, windowOpensAtMs: windowAtMs };
    const result = await session.commitRefresh({
      tokens,
      status: healthyStatus(record),
      // A chain still awaiting its identity check is due again at once: the check comes next.
      dueAtMs: record.verification ? arrivalMs : dueAtAfter(timing, tokens, arrivalMs, vended, config),
      ...(windowAtMs !== undefined ? { withoutAccess: { windowOpensAtMs: windowAtMs } } : {}),
      ...(vended ? { vendedAtMs: arrivalMs } : {}),
      ...(refusal ? { refusal } : {}),
    });
    log.info("token call answered", { ...logged, commit: result });
    return result === "superseded" ? undefined : tokens;
  }
}

function failed(error: BrokerError): ProtocolResult {
  return { kind: "failed", error };
}
