import { ExactUnavailable, Throttled } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import type { ExactMe } from "../exact/oauth-client.js";
import { ChainHandover } from "./chain-handover.js";
import { type ChainRecord, ChainSource, type VerificationNote } from "./chain-record.js";
import { checkFailed, type VerifyOutcome } from "./check-failures.js";
import { verified } from "./check-transitions.js";
import { holdPinnedDivision } from "./division-check.js";
import { announce, type EngineDeps } from "./engine-deps.js";
import { budgetExhaustedFor, TOKEN_ERRORS_PER_HOUR } from "./error-budget.js";
import type { LeaseSession } from "./lease-session.js";
import { OutagePacing } from "./outage-pacing.js";
import { dueAtAfter, type IssuedPair, type SealedTokens } from "./token-seal.js";
import { blockingReason, blockUser } from "./user-blocks.js";

export type { VerifyOutcome } from "./check-failures.js";

/** A chain stored as VERIFYING, with its tokens in plaintext for the check (and a hand-over). */
export interface StartedChain {
  readonly issued: IssuedPair & { readonly accessToken: string; readonly expiresInSeconds: number };
  readonly tokens: SealedTokens;
  readonly note: VerificationNote;
}

/** The shortest /current/Me call worth making (ms): a round trip to Exact, with room. */
export const MIN_CHECK_MS = 300;
/** Exact's clock starts a token's life before our arrival time does (by the token call's latency): keep this much in hand (ms). */
export const EXPIRY_MARGIN_MS = 200;

/** How long a /current/Me call with the chain's access token may take before the token expires (ms). */
export function checkableForMs(chain: Pick<StartedChain, "tokens">, nowMs: number): number {
  return (chain.tokens.access?.accessExpiresAtMs ?? 0) - EXPIRY_MARGIN_MS - nowMs;
}

/**
 * The `/current/Me` check of a chain Exact has started, made after the chain was stored (so a
 * failing check loses nothing) and before it is served. It decides where the chain belongs: this
 * connection, or the connection that already holds its Exact user (chain-handover.ts), or nowhere
 * (a login with the wrong user's credentials). A failed check keeps the chain VERIFYING; failures
 * Exact counts (4xx) have a budget of their own, 8 an hour like the token endpoint's.
 */
export class IdentityCheck {
  readonly #deps: EngineDeps;
  readonly #handover: ChainHandover;
  readonly #pacing: OutagePacing;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#handover = new ChainHandover(deps);
    this.#pacing = new OutagePacing(deps);
  }

  /**
   * Checks `chain` under `session` (which holds the VERIFYING chain's lease) and writes where it
   * belongs. `afterLogin`: the check follows a login in this invocation, so its failure also
   * counts against the login budget (a login whose result cannot be checked is a failed login).
   * `apiCheckClaimed`: the login before it claimed the app's re-check of a REST API rejection
   * (login-protocol.ts), so this check is that re-check.
   */
  async run(
    session: LeaseSession,
    chain: StartedChain,
    options: { readonly afterLogin: boolean; readonly vended: boolean; readonly apiCheckClaimed?: boolean },
  ): Promise<VerifyOutcome> {
    const { oauth, config, now } = this.#deps;
    const record = session.record;
    const exhaustedFor = budgetExhaustedFor(record.identityChecks, now(), TOKEN_ERRORS_PER_HOUR);
    if (exhaustedFor !== undefined) {
      return {
        kind: "failed",
        error: new Throttled(
          `identity checks of connection "${record.connectionId}" are spent for this hour`,
          {
            retryAfterSeconds: exhaustedFor,
          },
        ),
      };
    }
    // The token must outlive the call (a 401 from an expired token would be a false refusal).
    const checkableMs = checkableForMs(chain, now());
    if (checkableMs < Math.min(MIN_CHECK_MS, config.httpTimeoutMs)) {
      return {
        kind: "failed",
        error: new ExactUnavailable(
          `connection "${record.connectionId}": the stored access token is too close to expiry to check`,
          { retryAfterSeconds: 1 },
        ),
      };
    }
    // Exact refuses the app's scopes to every user: one chain of the app asks for all.
    const gate = options.apiCheckClaimed
      ? ({ kind: "go", probing: true } as const)
      : await this.#pacing.apiGate(record);
    if (gate.kind === "held") {
      return checkFailed(this.#deps, session, gate.error, { afterLogin: options.afterLogin, counts: false });
    }
    const timeoutMs = Math.min(config.httpTimeoutMs, checkableMs);
    session.requireTime(timeoutMs, "the identity check");
    const answer = await oauth.me(record.baseUrl, chain.issued.accessToken, timeoutMs);
    if (answer.kind === "refused" && answer.scopeViolated) {
      const error = await this.#pacing.apiRefused(session);
      return checkFailed(this.#deps, session, error, { afterLogin: options.afterLogin, counts: true });
    }
    if (gate.probing && answer.kind === "user")
      await this.#deps.apps.apiAccepted(record.clientId, record.baseUrl);
    const blockedFor =
      answer.kind === "refused" && answer.status === 403 ? blockingReason(answer.reason) : undefined;
    if (blockedFor) return this.#blocked(session, chain, blockedFor);
    if (answer.kind !== "user") {
      // Kept either way: a refusal of a brand-new token (a 401, a 403) is no proof the chain is
      // dead; its next refresh, or a later check, tells.
      const detail =
        answer.kind === "refused"
          ? `HTTP ${answer.status}${answer.reason ? ` ${answer.reason}` : ""}`
          : answer.detail;
      return checkFailed(
        this.#deps,
        session,
        new ExactUnavailable(`/api/v1/current/Me: ${detail}`, { retryAfterSeconds: 5 }),
        {
          afterLogin: options.afterLogin,
          counts: answer.kind === "refused",
        },
      );
    }
    return this.#place(session, chain, answer.me, options);
  }

  /** Exact refuses the user for a reason no login fixes: BLOCKED (user-blocks.ts). */
  async #blocked(session: LeaseSession, chain: StartedChain, reason: EventReason): Promise<VerifyOutcome> {
    const error = await blockUser(this.#deps, session, reason, { keepsRefreshToken: !!chain.tokens.refresh });
    return error ? { kind: "failed", error } : { kind: "superseded" };
  }

  /** Where the chain belongs, by the Exact user it turned out to be. */
  async #place(
    session: LeaseSession,
    chain: StartedChain,
    me: ExactMe,
    options: { readonly afterLogin: boolean; readonly vended: boolean },
  ): Promise<VerifyOutcome> {
    const { store } = this.#deps;
    const record = session.record;
    if (record.exactUserId === me.userId) return this.#verified(session, chain, me, options);
    const seed = chain.note.source === ChainSource.Seed;
    // A seed makes this connection the user's (unless another holds it); so does a first login.
    const claims = seed || record.exactUserId === undefined;
    const owner = await this.#owner(record, me.userId, claims);
    if (claims && owner === record.connectionId) {
      const outcome = await this.#verified(session, chain, me, options);
      // Re-seeded with another Exact user: the old user's chain is no longer ours.
      if (outcome.kind === "verified" && record.exactUserId && record.exactUserId !== me.userId) {
        await store.releaseGuard(record.clientId, record.exactUserId, record.connectionId);
      }
      return outcome;
    }
    return this.#handover.run(session, chain, {
      ...(owner !== undefined && owner !== record.connectionId ? { to: owner } : {}),
      exactUserId: me.userId,
      exactUserName: me.userName,
      division: me.division,
      afterwards: seed ? "restore" : record.exactUserId === undefined ? "duplicate_user" : "wrong_user",
    });
  }

  /**
   * The connection that holds `userId`'s guard (claimed for this connection when `claim`). A
   * guard naming a connection that is gone or holds another user now (an interrupted remove or
   * re-seed left it) is taken over, or, without `claim`, ignored.
   */
  async #owner(record: ChainRecord, userId: string, claim: boolean): Promise<string | undefined> {
    const { store } = this.#deps;
    const owner = claim
      ? await store.claimGuard(record.clientId, userId, record.connectionId)
      : await store.guardOwner(record.clientId, userId);
    if (owner === undefined || owner === record.connectionId) return owner;
    const holder = await store.get(owner);
    const stale = !holder || holder.clientId !== record.clientId || holder.exactUserId !== userId;
    if (!stale) return owner;
    this.#deps.log.warn("a stale guard names a connection that no longer holds the user", {
      connectionId: owner,
    });
    return claim ? store.replaceGuard(record.clientId, userId, owner, record.connectionId) : undefined;
  }

  async #verified(
    session: LeaseSession,
    chain: StartedChain,
    me: ExactMe,
    options: { readonly afterLogin: boolean; readonly vended: boolean },
  ): Promise<VerifyOutcome> {
    const { now, config, log } = this.#deps;
    const record = session.record;
    // The pinned division outlives every check (division-check.ts); Me's is pinned the first time.
    const held = await holdPinnedDivision(this.#deps, session, {
      accessToken: chain.issued.accessToken,
      checkableMs: checkableForMs(chain, now()),
      me,
      afterLogin: options.afterLogin,
    });
    if (held.kind === "stop") return held.outcome;
    const nowMs = now();
    const written = await session.finish(
      verified(
        { exactUserId: me.userId, exactUserName: me.userName, ...held.pin },
        dueAtAfter(record, chain.tokens, nowMs, options.vended, config),
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
      identity: { ...me, division: held.pin.division },
      fresh: {
        accessToken: chain.issued.accessToken,
        expiresAtMs: chain.tokens.access?.accessExpiresAtMs ?? nowMs,
        generation: session.generation,
      },
    };
  }
}
