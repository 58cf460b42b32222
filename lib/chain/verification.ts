import { TokenDecryptError } from "../errors.js";
import { EventReason } from "../events/broker-events.js";
import { ChainHandover } from "./chain-handover.js";
import { blockedReason, type ChainRecord, ChainStatus, LeasePurpose } from "./chain-record.js";
import { LeaseRefused } from "./chain-store.js";
import type { EngineDeps } from "./engine-deps.js";
import type { HistoryContext } from "./history-entry.js";
import {
  EXPIRY_MARGIN_MS,
  IdentityCheck,
  MIN_CHECK_MS,
  type StartedChain,
  type VerifyOutcome,
} from "./identity-check.js";
import { cipherWorks } from "./incarnation.js";
import type { LeaseSession } from "./lease-session.js";
import { handedOver } from "./lease-transitions.js";
import { type ProtocolResult, TokenProtocol } from "./token-protocol.js";
import { restoreAfterDeath } from "./token-refusals.js";

export type FinishOutcome =
  | VerifyOutcome
  /** The stored access token had expired: the chain was refreshed (still VERIFYING); check again. */
  | { readonly kind: "refreshed"; readonly result: ProtocolResult }
  /** Its access token is too old to check and Exact's window is not open yet (ms until it is). */
  | { readonly kind: "not_yet"; readonly waitMs: number }
  /** BLOCKED without a chain (implicit mode, or Exact ended it): only a login re-checks it (heal-door.ts). */
  | { readonly kind: "needs_login" }
  | { readonly kind: "busy" };

/**
 * Finishes the identity check of a chain stored as VERIFYING, under a lease of its own, with the
 * stored access token: no new login. Used by every door that meets such a chain (vend, the
 * scheduled refresh, fallback-login). If the check waited so long that the stored access token
 * has expired, the chain is first refreshed like any other (it stays VERIFYING).
 */
export class PendingVerification {
  readonly #deps: EngineDeps;
  readonly #identity: IdentityCheck;
  readonly #protocol: TokenProtocol;
  readonly #handover: ChainHandover;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#identity = new IdentityCheck(deps);
    this.#protocol = new TokenProtocol(deps);
    this.#handover = new ChainHandover(deps);
  }

  async finish(
    record: ChainRecord,
    options: {
      readonly vended: boolean;
      readonly deadlineMs?: number;
      /** The door that met the chain (and its caller), for the connection's history. */
      readonly history: HistoryContext;
    },
  ): Promise<FinishOutcome> {
    const { store, now, config, owner } = this.#deps;
    // A BLOCKED chain's re-check is the same check (its verification is still pending).
    if (record.status !== ChainStatus.Verifying && record.status !== ChainStatus.Blocked)
      return { kind: "busy" };
    const nowMs = now();
    // The check must end while the token is valid (identity-check.ts bounds the call by it).
    const usable = (record.accessExpiresAtMs ?? 0) - EXPIRY_MARGIN_MS - nowMs >= MIN_CHECK_MS;
    const lease = {
      record,
      owner,
      leaseMs: config.leaseMs,
      ...(options.deadlineMs !== undefined ? { deadlineMs: options.deadlineMs } : {}),
      history: options.history,
    };
    if (record.handOver) {
      // A hand-over decided earlier: finish it, without asking Exact again.
      const handOver = record.handOver;
      const resumed = await store.withLease({ ...lease, purpose: LeasePurpose.Verify }, async (session) => {
        const chain = await this.#fromRecord(session);
        return chain ? this.#handover.finish(session, chain, handOver) : ({ kind: "superseded" } as const);
      });
      return resumed === LeaseRefused ? { kind: "busy" } : resumed;
    }
    if (!usable && !record.refreshCt) {
      if (record.status === ChainStatus.Blocked) return { kind: "needs_login" };
      // An implicit login's token expired unchecked: nothing can check it now; the next login
      // replaces it (a blocked user's re-check: the connection stays BLOCKED, see droppedTo).
      const dropped = await store.withLease({ ...lease, purpose: LeasePurpose.Verify }, (session) =>
        session.finish(handedOver(droppedTo(session.record), now())),
      );
      return dropped === LeaseRefused ? { kind: "busy" } : { kind: "superseded" };
    }
    // A BLOCKED chain's unknown outcome is probed before its user is checked: the probe tells
    // whether the chain lives (invariant 5).
    if (!usable || record.unknownOutcomeAtMs !== undefined) {
      const waitMs = (record.windowOpensAtMs ?? 0) - nowMs;
      if (waitMs > 0) return { kind: "not_yet", waitMs };
      const refreshed = await store.withLease({ ...lease, purpose: LeasePurpose.Refresh }, (session) =>
        this.#protocol.refresh(session, { vended: options.vended }),
      );
      return refreshed === LeaseRefused ? { kind: "busy" } : { kind: "refreshed", result: refreshed };
    }
    const outcome = await store.withLease({ ...lease, purpose: LeasePurpose.Verify }, async (session) => {
      const chain = await this.#fromRecord(session);
      if (!chain) return { kind: "superseded" } as const;
      return this.#identity.run(session, chain, { afterLogin: false, vended: options.vended });
    });
    return outcome === LeaseRefused ? { kind: "busy" } : outcome;
  }

  /** Reads a VERIFYING chain's tokens back from its item, for a check under a later lease. */
  /**
   * The stored chain in plaintext, or undefined when there is none to check. A stored token that
   * no longer decrypts (while the cipher itself works) cannot be checked or handed on ever: the
   * connection goes back to where it was, like after a chain that died.
   */
  async #fromRecord(session: LeaseSession): Promise<StartedChain | undefined> {
    try {
      return await this.#decrypted(session);
    } catch (error) {
      if (!(error instanceof TokenDecryptError) || !(await cipherWorks(this.#deps.cipher, session)))
        throw error;
      this.#deps.log.error("a stored chain awaiting its check does not decrypt; dropped", {
        connectionId: session.connectionId,
      });
      const back = restoreAfterDeath(session.record, EventReason.DecryptFailed);
      if (back) await session.finish(handedOver(back, this.#deps.now()));
      return undefined;
    }
  }

  async #decrypted(session: LeaseSession): Promise<StartedChain | undefined> {
    const record = session.record;
    if (!record.verification || !record.accessCt || !record.accessExpiresAtMs || !record.accessIssuedAtMs) {
      return undefined;
    }
    const binding = { connectionId: record.connectionId, incarnation: session.incarnation };
    const { cipher } = this.#deps;
    const accessToken = await cipher.decrypt(record.accessCt, { ...binding, kind: "access" });
    const refreshToken = record.refreshCt
      ? await cipher.decrypt(record.refreshCt, { ...binding, kind: "refresh" })
      : undefined;
    return {
      issued: {
        accessToken,
        expiresInSeconds: Math.round((record.accessExpiresAtMs - record.accessIssuedAtMs) / 1000),
        ...(refreshToken ? { refreshToken } : {}),
      },
      tokens: {
        access: {
          accessCt: record.accessCt,
          accessIssuedAtMs: record.accessIssuedAtMs,
          accessExpiresAtMs: record.accessExpiresAtMs,
          windowOpensAtMs: record.windowOpensAtMs ?? record.accessExpiresAtMs,
        },
        ...(record.refreshCt && record.refreshHash
          ? {
              refresh: {
                refreshCt: record.refreshCt,
                refreshHash: record.refreshHash,
                refreshIssuedAtMs: record.refreshIssuedAtMs ?? record.accessIssuedAtMs,
              },
            }
          : {}),
      },
      note: record.verification,
    };
  }
}

/** Where a connection goes when the unchecked chain of its login is dropped: back, or still BLOCKED. */
function droppedTo(record: ChainRecord): { readonly status: ChainStatus; readonly statusReason?: string } {
  const blockedBy = blockedReason(record);
  if (blockedBy !== undefined) return { status: ChainStatus.Blocked, statusReason: blockedBy };
  return { status: record.verification?.statusBefore ?? ChainStatus.New };
}
