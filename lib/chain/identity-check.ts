import { type BrokerError, ExactUnavailable, ReauthRequired, Throttled } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import type { ExactMe } from "../exact/oauth-client.js";
import { type ChainRecord, ChainSource, ChainStatus, type VerificationNote } from "./chain-record.js";
import { announce, type EngineDeps } from "./engine-deps.js";
import { afterError, backoffMs, budgetExhaustedFor, TOKEN_ERRORS_PER_HOUR } from "./error-budget.js";
import type { LeaseSession } from "./lease-session.js";
import { backedOff, handedOver, verified } from "./lease-transitions.js";
import { LOGIN_FAILURES_PER_HOUR } from "./login-budget.js";
import type { FreshAccess } from "./token-protocol.js";
import { dueAtAfter, type IssuedPair, prepareSealer, type SealedTokens, sealTokens } from "./token-seal.js";

/** A chain stored as VERIFYING, with its tokens in plaintext for the check (and a hand-over). */
export interface StartedChain {
  readonly issued: IssuedPair & { readonly accessToken: string; readonly expiresInSeconds: number };
  readonly tokens: SealedTokens;
  readonly note: VerificationNote;
}

export type VerifyOutcome =
  /** The chain is this connection's and ACTIVE. */
  | { readonly kind: "verified"; readonly fresh: FreshAccess; readonly identity: ExactMe }
  /** Another connection holds the chain's Exact user: the chain went there. */
  | { readonly kind: "handed_over"; readonly to: string; readonly identity: ExactMe }
  /** A login reached another Exact user than the connection's: REAUTH_REQUIRED. */
  | { readonly kind: "wrong_user"; readonly identity: ExactMe }
  /** A connection's first login reached a user that `owner` already holds: REAUTH_REQUIRED. */
  | { readonly kind: "duplicate"; readonly owner: string; readonly identity: ExactMe }
  /** Exact refused the new access token: the chain start did not take. */
  | { readonly kind: "rejected" }
  | { readonly kind: "superseded" }
  /** The check could not be made; the chain stays VERIFYING (never served) until a later lease checks it. */
  | { readonly kind: "failed"; readonly error: BrokerError };

/**
 * The `/current/Me` check of a chain Exact has started, made after the chain was stored (so a
 * failing check loses nothing) and before it is served. It decides where the chain belongs: this
 * connection, or the connection that already holds its Exact user (Exact keeps one chain per app
 * and user, so that connection's old chain is dead and this is its new one), or nowhere (a login
 * with the wrong user's credentials). A failed check keeps the chain VERIFYING, within a budget of
 * its own: Exact counts a 4xx answer on /current/Me against its error limit.
 */
export class IdentityCheck {
  readonly #deps: EngineDeps;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  /**
   * Checks `chain` under `session` (which holds the VERIFYING chain's lease) and writes where it
   * belongs. `afterLogin`: the check follows a login in this invocation, so its failure also
   * counts against the login budget (a login whose result cannot be checked is a failed login).
   */
  async run(
    session: LeaseSession,
    chain: StartedChain,
    options: { readonly afterLogin: boolean; readonly vended: boolean },
  ): Promise<VerifyOutcome> {
    const { oauth, config, now, store } = this.#deps;
    const record = session.record;
    const exhaustedFor = budgetExhaustedFor(record.identityChecks, now(), TOKEN_ERRORS_PER_HOUR);
    if (exhaustedFor !== undefined) {
      return failed(
        new Throttled(`identity checks of connection "${record.connectionId}" are spent for this hour`, {
          retryAfterSeconds: exhaustedFor,
        }),
      );
    }
    // The token must outlive the call (a 401 from an expired token would look like a rejected chain).
    const checkableMs = checkableForMs(chain, now());
    const timeoutMs = Math.min(config.httpTimeoutMs, checkableMs);
    if (checkableMs < Math.min(MIN_CHECK_MS, config.httpTimeoutMs)) {
      return failed(
        new ExactUnavailable(
          `connection "${record.connectionId}": the stored access token is too close to expiry to check`,
          {
            retryAfterSeconds: 1,
          },
        ),
      );
    }
    session.requireTime(timeoutMs, "the identity check");
    let me: ExactMe;
    try {
      me = await oauth.me(record.baseUrl, chain.issued.accessToken, timeoutMs);
    } catch (error) {
      if (error instanceof ReauthRequired) return this.#rejected(session, chain.note);
      if (!(error instanceof ExactUnavailable)) throw error;
      return this.#checkFailed(session, error, options.afterLogin);
    }
    if (record.exactUserId === me.userId) return this.#verified(session, chain, me, options.vended);
    if (chain.note.source !== ChainSource.Seed) return this.#loginOfAnotherUser(session, chain, me);
    const owner = await store.claimGuard(record.clientId, me.userId, record.connectionId);
    if (owner === record.connectionId) {
      const outcome = await this.#verified(session, chain, me, options.vended);
      // Re-seeded with another Exact user: the old user's chain is no longer ours.
      if (outcome.kind === "verified" && record.exactUserId && record.exactUserId !== me.userId) {
        await store.releaseGuard(record.clientId, record.exactUserId, record.connectionId);
      }
      return outcome;
    }
    if (!(await this.#handTo(owner, chain, me))) return this.#busy(session, owner);
    const back = chain.note.retired
      ? { restore: chain.note.retired, status: chain.note.retired.status }
      : { status: chain.note.statusBefore };
    if (!(await session.finish(handedOver(back, this.#deps.now())))) return { kind: "superseded" };
    this.#deps.log.info("chain handed to the connection that holds its Exact user", {
      connectionId: record.connectionId,
      to: owner,
    });
    return { kind: "handed_over", to: owner, identity: me };
  }

  /**
   * A login whose user is not the connection's: its secret names another Exact user (wrong_user),
   * or, for a connection's first login, a user another connection holds (duplicate_user). Exact
   * started that user's chain, which ends the one its connection held: that one gets it.
   */
  async #loginOfAnotherUser(session: LeaseSession, chain: StartedChain, me: ExactMe): Promise<VerifyOutcome> {
    const { store } = this.#deps;
    const record = session.record;
    const first = record.exactUserId === undefined;
    const owner = first
      ? await store.claimGuard(record.clientId, me.userId, record.connectionId)
      : await store.guardOwner(record.clientId, me.userId);
    if (owner === record.connectionId) return this.#verified(session, chain, me, false);
    if (owner !== undefined && !(await this.#handTo(owner, chain, me))) return this.#busy(session, owner);
    const reason = first ? EventReason.DuplicateUser : EventReason.WrongUser;
    const back = { status: ChainStatus.ReauthRequired, statusReason: reason, lastLoginFailure: reason };
    if (!(await session.finish(handedOver(back, this.#deps.now())))) return { kind: "superseded" };
    await announce(this.#deps, BrokerEventType.ReauthRequired, session, reason);
    return first && owner !== undefined
      ? { kind: "duplicate", owner, identity: me }
      : { kind: "wrong_user", identity: me };
  }

  async #verified(
    session: LeaseSession,
    chain: StartedChain,
    me: ExactMe,
    vended: boolean,
  ): Promise<VerifyOutcome> {
    const { now, config, log } = this.#deps;
    const record: ChainRecord = session.record;
    const nowMs = now();
    const written = await session.finish(
      verified(
        { exactUserId: me.userId, exactUserName: me.userName, division: me.division },
        dueAtAfter(record, chain.tokens, nowMs, vended, config),
        nowMs,
      ),
    );
    if (!written) return { kind: "superseded" };
    log.info("chain verified", {
      connectionId: record.connectionId,
      generation: session.generation,
      source: chain.note.source,
    });
    if (chain.note.source === ChainSource.Heal) {
      await announce(this.#deps, BrokerEventType.ChainHealed, session, EventReason.Healed);
    }
    return {
      kind: "verified",
      identity: me,
      fresh: {
        accessToken: chain.issued.accessToken,
        expiresAtMs: chain.tokens.access?.accessExpiresAtMs ?? nowMs,
        generation: session.generation,
      },
    };
  }

  /** Seals the chain for `owner` (its own incarnation) and lands it there, at most once. */
  async #handTo(owner: string, chain: StartedChain, me: ExactMe): Promise<boolean> {
    const { store, cipher, config, now } = this.#deps;
    const hash = chain.tokens.refresh?.refreshHash;
    // An implicit login's token starts no chain: there is nothing to hand over.
    if (hash === undefined || chain.issued.refreshToken === undefined) return true;
    const target = await store.get(owner);
    if (!target?.incarnation) return false;
    if (hash !== undefined && (target.adoptedHash === hash || target.refreshHash === hash)) return true;
    const sealer = await prepareSealer(cipher, target);
    const tokens = await sealTokens(
      sealer,
      chain.issued,
      chain.tokens.access?.accessIssuedAtMs ?? now(),
      target.mode,
      config,
    );
    const identity = { exactUserId: me.userId, exactUserName: me.userName, division: me.division };
    if (
      await store.unleased.adoptChain(
        target,
        tokens,
        identity,
        dueAtAfter(target, tokens, now(), false, config),
      )
    ) {
      return true;
    }
    const after = await store.get(owner);
    return after !== undefined && (after.adoptedHash === hash || after.refreshHash === hash);
  }

  async #busy(session: LeaseSession, owner: string): Promise<VerifyOutcome> {
    return this.#checkFailed(
      session,
      new ExactUnavailable(
        `connection "${session.connectionId}": its new chain belongs to connection "${owner}", which is verifying a chain of its own; retrying later`,
        { retryAfterSeconds: 30 },
      ),
      false,
      false,
    );
  }

  async #rejected(session: LeaseSession, note: VerificationNote): Promise<VerifyOutcome> {
    const back = note.retired
      ? { restore: note.retired, status: note.retired.status }
      : {
          status: note.source === ChainSource.Seed ? note.statusBefore : ChainStatus.Broken,
          statusReason: EventReason.InvalidChain,
        };
    if (!(await session.finish(handedOver(back, this.#deps.now())))) return { kind: "superseded" };
    this.#deps.log.warn("Exact refused the new chain's access token on /current/Me", {
      connectionId: session.connectionId,
    });
    return { kind: "rejected" };
  }

  async #checkFailed(
    session: LeaseSession,
    error: BrokerError,
    afterLogin: boolean,
    counts = true,
  ): Promise<VerifyOutcome> {
    const { now, random } = this.#deps;
    const record = session.record;
    const nowMs = now();
    const streak = (record.failureStreak ?? 0) + 1;
    const waitMs = Math.max(backoffMs(streak, random), (error.retryAfterSeconds ?? 0) * 1000);
    const written = await session.finish(
      backedOff(
        { backoffUntilMs: nowMs + waitMs, backoffReason: "unavailable", failureStreak: streak },
        nowMs,
        {
          dueAtMs: nowMs + waitMs,
          ...(counts ? { identityChecks: afterError(record.identityChecks, nowMs) } : {}),
          ...(afterLogin
            ? {
                loginFailures: afterError(record.loginFailures, nowMs, LOGIN_FAILURES_PER_HOUR),
                lastLoginFailure: EventReason.LoginFailed,
              }
            : {}),
        },
      ),
    );
    if (!written) return { kind: "superseded" };
    this.#deps.log.warn("identity check failed; the chain stays stored as VERIFYING", {
      connectionId: record.connectionId,
      errorType: error.name,
    });
    return failed(
      new ExactUnavailable(
        `connection "${record.connectionId}": the new chain is stored, but its identity check failed (${error.message}); it is retried automatically`,
        { retryAfterSeconds: Math.ceil(waitMs / 1000), cause: error },
      ),
    );
  }
}

/** The shortest /current/Me call worth making (ms): a round trip to Exact, with room. */
export const MIN_CHECK_MS = 300;
/** Exact's clock starts a token's life before our arrival time does (by the token call's latency): keep this much in hand (ms). */
export const EXPIRY_MARGIN_MS = 200;

/** How long a /current/Me call with the chain's access token may take before the token expires (ms). */
export function checkableForMs(chain: Pick<StartedChain, "tokens">, nowMs: number): number {
  return (chain.tokens.access?.accessExpiresAtMs ?? 0) - EXPIRY_MARGIN_MS - nowMs;
}

function failed(error: BrokerError): VerifyOutcome {
  return { kind: "failed", error };
}
