import type { BrokerError } from "../errors.js";
import { ExactUnavailable, ReauthRequired } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import { countsAsExactError, DeadReason, type TokenOutcome } from "../exact/classify-token-response.js";
import { type ChainRecord, healthyStatus, LeasePurpose } from "./chain-record.js";
import { announce, type EngineDeps } from "./engine-deps.js";
import { afterError, backoffMs } from "./error-budget.js";
import type { LeaseSession } from "./lease-session.js";
import { backedOff, broken, needsOperator, suspect } from "./lease-transitions.js";
import { refusalError } from "./refusal-errors.js";
import type { FreshAccess } from "./token-protocol.js";

/** How a refresh under a lease ended. */
export type ProtocolResult =
  | { readonly kind: "refreshed"; readonly fresh: FreshAccess | undefined }
  /** Someone committed a newer generation or took the lease meanwhile: re-read. */
  | { readonly kind: "superseded" }
  /** Exact no longer accepts the chain; it is BROKEN now and due for a heal. */
  | { readonly kind: "broken" }
  | { readonly kind: "failed"; readonly error: BrokerError };

const SUPERSEDED: ProtocolResult = { kind: "superseded" };

function failed(error: BrokerError): ProtocolResult {
  return { kind: "failed", error };
}

/** Exact's error limit counts 4xx answers (too-early included): such an answer spends the chain's budget. */
/**
 * The one write that records a token-endpoint answer that carried no new refresh token: too early
 * (the chain is fine), dead (BROKEN), client rejected (REAUTH_REQUIRED), rate-limited or down
 * (backoff), or no answer at all (SUSPECT; BROKEN if it was the probe). Ends the lease.
 */
export async function settleRefusal(
  deps: EngineDeps,
  session: LeaseSession,
  outcome: Exclude<TokenOutcome, { kind: "tokens" }>,
  arrivalMs: number,
): Promise<ProtocolResult> {
  const record = session.record;
  const probing = session.purpose === LeasePurpose.Probe;
  const errors = exactErrors(record, outcome, arrivalMs);
  let written: boolean;
  switch (outcome.kind) {
    case "too_early":
      // Our window estimate was early (clock skew): the chain is fine. A SUSPECT chain is
      // proven intact too: its refresh token is still the current one.
      written = await session.finish(
        backedOff({ ...errors, backoffUntilMs: arrivalMs + 5_000, backoffReason: "throttled" }, arrivalMs, {
          status: healthyStatus(record),
          windowOpensAtMs: Math.max(record.windowOpensAtMs ?? 0, arrivalMs + 5_000),
        }),
      );
      return written ? failed(refusalError(outcome, record.connectionId)) : SUPERSEDED;
    case "chain_dead":
      // An old-token answer to a probe means the lost call did rotate the chain: its answer is what was lost.
      return markBroken(
        deps,
        session,
        probing && outcome.reason === DeadReason.OldToken ? EventReason.LostAnswer : outcome.reason,
        errors,
      );
    case "client_rejected":
      if (!(await session.finish(needsOperator(EventReason.InvalidClient, arrivalMs, errors))))
        return SUPERSEDED;
      await announce(deps, BrokerEventType.ReauthRequired, session, EventReason.InvalidClient);
      return failed(
        new ReauthRequired(
          `connection "${record.connectionId}": Exact rejected the client ID or secret; fix the connection's secret, then run: exact-broker heal --id ${record.connectionId}`,
        ),
      );
    case "rate_limited":
    case "unavailable": {
      const streak = (record.failureStreak ?? 0) + 1;
      const waitMs =
        outcome.retryAfterSeconds !== undefined
          ? outcome.retryAfterSeconds * 1000
          : backoffMs(streak, deps.random);
      written = await session.finish(
        backedOff(
          {
            ...errors,
            failureStreak: streak,
            backoffUntilMs: arrivalMs + waitMs,
            backoffReason: outcome.kind === "rate_limited" ? "throttled" : "unavailable",
          },
          arrivalMs,
        ),
      );
      return written ? failed(refusalError(outcome, record.connectionId, waitMs)) : SUPERSEDED;
    }
    case "outcome_unknown":
      if (probing) return markBroken(deps, session, EventReason.LostAnswer);
      written = await session.finish(
        suspect({ backoffUntilMs: arrivalMs + 2_000, backoffReason: "unavailable" }, arrivalMs),
      );
      return written
        ? failed(
            new ExactUnavailable(
              `token call for connection "${record.connectionId}" got no answer; the chain is being checked`,
              { retryAfterSeconds: 2 },
            ),
          )
        : SUPERSEDED;
  }
}

export function exactErrors(record: ChainRecord, outcome: TokenOutcome, atMs: number) {
  return countsAsExactError(outcome) ? { tokenErrors: afterError(record.tokenErrors, atMs) } : {};
}

/** BROKEN, announced: the refresher and waiting vends trigger its heal. */
export async function markBroken(
  deps: EngineDeps,
  session: LeaseSession,
  reason: EventReason,
  budgets: { readonly tokenErrors?: ReturnType<typeof afterError> } = {},
): Promise<ProtocolResult> {
  if (!(await session.finish(broken(reason, deps.now(), budgets)))) return SUPERSEDED;
  deps.log.warn("chain broken", {
    connectionId: session.connectionId,
    reason,
    generation: session.generation,
  });
  await announce(deps, BrokerEventType.ChainBroken, session, reason);
  return { kind: "broken" };
}
