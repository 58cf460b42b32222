import { type BrokerError, ExactUnavailable, TokenDecryptError } from "../errors.js";
import { type AccessCheck, AccessCheckOutcome, currentCheck } from "./access-check.js";
import { awaitsProbe, type ChainRecord, ChainSource, ChainStatus, LeasePurpose } from "./chain-record.js";
import { LeaseRefused } from "./chain-store.js";
import { accessChecked } from "./check-transitions.js";
import type { EngineDeps } from "./engine-deps.js";
import { afterError } from "./error-budget.js";
import type { HistoryContext } from "./history-entry.js";
import { EXPIRY_MARGIN_MS, MIN_CHECK_MS } from "./identity-check.js";
import type { LeaseSession } from "./lease-session.js";
import { OutagePacing } from "./outage-pacing.js";
import { type FreshAccess, type ProtocolResult, TokenProtocol } from "./token-protocol.js";
import { blockingReason, blockUser } from "./user-blocks.js";

/** How the check of a token a consumer reported refused ended. */
export type CheckOutcome =
  /** `/current/Me` accepted it (recorded): the same token is served again. */
  | { readonly kind: "accepted"; readonly fresh: FreshAccess }
  /** Recorded as refused or unknown, checked by someone else already, or the chain moved on: read again. */
  | { readonly kind: "again" }
  /** Another holder has the lease, or the chain moved on before it was taken. */
  | { readonly kind: "busy" }
  /** A holder had vanished under its note: this lease made the token call that settles it instead. */
  | { readonly kind: "refreshed"; readonly result: ProtocolResult }
  | { readonly kind: "failed"; readonly error: BrokerError };

const AGAIN: CheckOutcome = { kind: "again" };
/** Seconds a reporter waits after a check that never reached Exact (a refused connection, DNS). */
const NOT_SENT_RETRY_S = 5;

/**
 * The `/current/Me` check of the current access token after a consumer reported that Exact
 * refused it (token-vend's `rejectedGeneration`, access-check.ts), at most once per generation
 * whatever the number of consumers reporting it: it runs under the chain's lease, which one
 * invocation anywhere holds at a time; its holder re-reads the item as the lease was taken (the
 * acquire's ALL_OLD) and stops when a check of the generation is recorded there; and the write that
 * ends the lease records the outcome, conditional on the fence and the generation.
 *
 * The lease is taken for a refresh (LeasePurpose.Refresh), which is what the refused token leads
 * to: a holder that vanishes during the check leaves a note that makes the next token call a
 * probe, one call Exact would have had anyway, never a lost chain. Me's answer decides:
 * accepted → served again; refused (4xx) → recorded, served to nobody, the generation's refresh
 * comes next (vend-door.ts, inside Exact's window); 403 with a `Reason` that refuses the user →
 * BLOCKED (user-blocks.ts); "Application Scope Violated" → the app is held (outage-pacing.ts);
 * 5xx or no answer → recorded as unknown (no second call). Refusals spend the identity checks'
 * budget (8 an hour; Exact blocks at 10 per app, user and endpoint).
 */
export class RejectedTokenCheck {
  readonly #deps: EngineDeps;
  readonly #protocol: TokenProtocol;
  readonly #pacing: OutagePacing;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#protocol = new TokenProtocol(deps);
    this.#pacing = new OutagePacing(deps);
  }

  /**
   * Checks `record`'s current access token under the chain's lease.
   * @param options.deadlineMs epoch ms (injected clock) by which the work must be done
   * @throws ChainBusy (retryable) when the call cannot end inside the lease and the deadline
   */
  async run(
    record: ChainRecord,
    options: { readonly deadlineMs?: number; readonly history: HistoryContext },
  ): Promise<CheckOutcome> {
    const { store, owner, config } = this.#deps;
    const result = await store.withLease(
      {
        record,
        owner,
        purpose: LeasePurpose.Refresh,
        leaseMs: config.leaseMs,
        ...(options.deadlineMs !== undefined ? { deadlineMs: options.deadlineMs } : {}),
        history: options.history,
      },
      (session) => this.#check(session),
    );
    return result === LeaseRefused ? { kind: "busy" } : result;
  }

  async #check(session: LeaseSession): Promise<CheckOutcome> {
    const { now, oauth, config, cipher, apps } = this.#deps;
    const record = session.record;
    if (currentCheck(record)) return AGAIN;
    // A holder vanished under its note after our read: Exact may have rotated the chain, and the
    // note goes with this lease, so the token protocol settles it now, as any lease taken over
    // such a note does (a probe; one that comes before Exact's window is refused as too early,
    // which proves the chain alive).
    if (record.inflight) {
      return { kind: "refreshed", result: await this.#protocol.refresh(session, { vended: true }) };
    }
    const serving = record.status === ChainStatus.Active || record.status === ChainStatus.Suspect;
    if (!serving || record.handOver || (record.backoffUntilMs ?? 0) > now()) return AGAIN;
    // While Exact's REST API refuses the app's scopes, one chain of the app asks for all.
    const gate = await this.#pacing.apiGate(record);
    if (gate.kind === "held") return { kind: "failed", error: gate.error };
    let accessToken: string;
    try {
      accessToken = await cipher.decrypt(record.accessCt ?? "", {
        connectionId: record.connectionId,
        kind: "access",
        incarnation: session.incarnation,
      });
    } catch (error) {
      if (!(error instanceof TokenDecryptError)) throw error;
      return this.#recorded(session, AccessCheckOutcome.Unknown, false);
    }
    // The token must outlive the call: an expired one's 401 would be no answer about it.
    const checkableMs = (record.accessExpiresAtMs ?? 0) - EXPIRY_MARGIN_MS - now();
    if (checkableMs < Math.min(MIN_CHECK_MS, config.httpTimeoutMs)) return AGAIN;
    const timeoutMs = Math.min(config.httpTimeoutMs, checkableMs);
    session.requireTime(timeoutMs, "the check of a token reported refused");
    const answer = await oauth.me(record.baseUrl, accessToken, timeoutMs);
    if (gate.probing && answer.kind === "user") await apps.apiAccepted(record.clientId, record.baseUrl);
    if (answer.kind === "user") {
      const check = checkOf(session, AccessCheckOutcome.Accepted, now());
      if (!(await session.finish(accessChecked(check)))) return AGAIN;
      this.#deps.log.info("a token reported refused is accepted by Exact", {
        connectionId: session.connectionId,
        generation: session.generation,
      });
      const expiresAtMs = record.accessExpiresAtMs ?? 0;
      return { kind: "accepted", fresh: { accessToken, expiresAtMs, generation: session.generation } };
    }
    if (answer.kind === "unavailable" && !answer.sent) {
      // Exact never saw it, so it was no check: the generation stays unchecked, and a report
      // after a short pause checks it, rather than waiting for Exact's window (up to 9½ minutes).
      await session.release();
      return {
        kind: "failed",
        error: new ExactUnavailable(
          `connection "${session.connectionId}": could not reach Exact to check the reported token`,
          { retryAfterSeconds: NOT_SENT_RETRY_S },
        ),
      };
    }
    if (answer.kind === "unavailable") return this.#recorded(session, AccessCheckOutcome.Unknown, false);
    if (answer.scopeViolated) {
      // The check is recorded before the app's state: that is bookkeeping, and its failure must
      // not leave the generation unchecked on the item (a second Me call, counted by Exact).
      await this.#recorded(session, AccessCheckOutcome.Unknown, true);
      return { kind: "failed", error: await this.#pacing.apiRefused(session) };
    }
    const blockedFor = answer.status === 403 ? blockingReason(answer.reason) : undefined;
    if (blockedFor) {
      const error = await blockUser(
        this.#deps,
        session,
        blockedFor,
        { keepsRefreshToken: true },
        {
          // Re-checked with /current/Me as a started chain would be; a SUSPECT chain's probe stays due.
          verification: {
            source: ChainSource.Recheck,
            startedAtMs: record.chainStartedAtMs ?? now(),
            statusBefore: ChainStatus.Active,
          },
          ...(awaitsProbe(record) ? { unknownOutcomeAtMs: record.unknownOutcomeAtMs ?? now() } : {}),
        },
      );
      return error ? { kind: "failed", error } : AGAIN;
    }
    return this.#recorded(session, AccessCheckOutcome.Refused, true);
  }

  /** Ends the lease with the check recorded; `counts`: Exact counted the answer as an error. */
  async #recorded(
    session: LeaseSession,
    outcome: AccessCheckOutcome,
    counts: boolean,
  ): Promise<CheckOutcome> {
    const nowMs = this.#deps.now();
    const budget = counts ? afterError(session.record.identityChecks, nowMs) : undefined;
    await session.finish(accessChecked(checkOf(session, outcome, nowMs), budget));
    this.#deps.log.warn("a token reported refused is not accepted by Exact", {
      connectionId: session.connectionId,
      generation: session.generation,
      outcome,
    });
    return AGAIN;
  }
}

function checkOf(session: LeaseSession, outcome: AccessCheckOutcome, nowMs: number): AccessCheck {
  return { generation: session.generation, outcome, checkedAtMs: nowMs };
}
