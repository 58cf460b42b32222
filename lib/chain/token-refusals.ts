import type { BrokerError } from "../errors.js";
import { ExactUnavailable } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import {
  countsAsExactError,
  DeadReason,
  type TokenOutcome,
  UnavailableCause,
} from "../exact/classify-token-response.js";
import type { AppState } from "./app-states.js";
import {
  awaitsProbe,
  blockedReason,
  type ChainRecord,
  ChainSource,
  ChainStatus,
  healthyStatus,
  LeasePurpose,
  type OddAnswers,
} from "./chain-record.js";
import { announce, type EngineDeps } from "./engine-deps.js";
import { afterError, backoffMs } from "./error-budget.js";
import type { LeaseSession } from "./lease-session.js";
import { backedOff, broken, handedOver, suspect } from "./lease-transitions.js";
import { refusalError } from "./refusal-errors.js";
import type { FreshAccess } from "./token-protocol.js";
import { BLOCKING_REASONS, blockUser } from "./user-blocks.js";

/** How a refresh under a lease ended. */
export type ProtocolResult =
  | { readonly kind: "refreshed"; readonly fresh: FreshAccess | undefined }
  /** Someone committed a newer generation or took the lease meanwhile: re-read. */
  | { readonly kind: "superseded" }
  /** Exact no longer accepts the chain; it is BROKEN now and due for a heal. */
  | { readonly kind: "broken" }
  | {
      readonly kind: "failed";
      readonly error: BrokerError;
      /**
       * Epoch ms (the engine's clock) from which the same refresh may be tried again: set only
       * when Exact's answer asked nothing but a wait (too early; throttled or not processed, to
       * anything but a probe), so its holder may retry within the window (due-chain-work.ts), at
       * the chain's backoff or the app's outage pacing. Absent for an unknown outcome, a block,
       * a spent budget, ….
       */
      readonly retryAtMs?: number;
    };

const SUPERSEDED: ProtocolResult = { kind: "superseded" };

function failed(error: BrokerError, retryAtMs?: number): ProtocolResult {
  return retryAtMs === undefined ? { kind: "failed", error } : { kind: "failed", error, retryAtMs };
}

/** Exact's error limit counts 4xx answers (too-early included): such an answer spends the chain's budget. */
/**
 * The one write that records a token-endpoint answer that carried no new refresh token: too early
 * (the chain is fine), dead (BROKEN), the user refused (BLOCKED), rate-limited or down (backoff),
 * or an unknown outcome (SUSPECT: no answer, a 5xx, a 2xx without tokens; the probe's no answer
 * makes it BROKEN, the probe's 5xx leaves it SUSPECT). Ends the lease.
 */
export async function settleRefusal(
  deps: EngineDeps,
  session: LeaseSession,
  outcome: Exclude<TokenOutcome, { kind: "tokens" } | { kind: "client_rejected" }>,
  arrivalMs: number,
  pacing: {
    readonly app: AppState;
    /** An outage answer: try again just after the app's next probe, not on the chain's own schedule. */
    readonly pacedUntilMs?: number;
  },
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
      // Not after a probe: "too early" is taken to prove the chain intact, but Exact might apply
      // its 570 s rule before it checks the token; a retry would then resend a rotated one.
      return written
        ? failed(
            refusalError(outcome, record.connectionId),
            probing || awaitsProbe(record) ? undefined : arrivalMs + 5_000,
          )
        : SUPERSEDED;
    case "chain_dead":
      // An old-token answer to a probe means the lost call did rotate the chain: its answer is what was lost.
      return markBroken(
        deps,
        session,
        probing && outcome.reason === DeadReason.OldToken ? EventReason.LostAnswer : outcome.reason,
        errors,
      );
    case "rate_limited":
    case "unavailable": {
      const odd = oddAnswer(record, outcome, pacing.app, arrivalMs);
      if (odd === "escalate") {
        // Plain text or an unknown error, again and again, while the app's other chains refresh
        // fine: no maintenance then. Once probed; if the probe gets the same, the chain is dead.
        if (probing) return markBroken(deps, session, EventReason.InvalidChain, errors);
        written = await session.finish(
          suspect(
            { ...errors, backoffUntilMs: arrivalMs + 2_000, backoffReason: "unavailable" },
            arrivalMs,
            record,
          ),
        );
        return written
          ? failed(
              new ExactUnavailable(
                `connection "${record.connectionId}": Exact keeps refusing this chain alone; it is being checked`,
                { retryAfterSeconds: 2 },
              ),
            )
          : SUPERSEDED;
      }
      const streak = (record.failureStreak ?? 0) + 1;
      const waitMs =
        pacing.pacedUntilMs !== undefined
          ? pacing.pacedUntilMs - arrivalMs
          : outcome.retryAfterSeconds !== undefined
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
          { dueAtMs: arrivalMs + waitMs, ...(odd ? { oddAnswers: odd } : {}) },
        ),
      );
      // Not after a probe's answer: that is for the next holder to weigh, on the chain's own pace.
      // An outage's wait is the app's pacing (just after its next probe, spread per chain).
      const mayRetryAtMs = !probing && !awaitsProbe(record) ? arrivalMs + waitMs : undefined;
      return written ? failed(refusalError(outcome, record.connectionId, waitMs), mayRetryAtMs) : SUPERSEDED;
    }
    case "user_blocked": {
      const error = await blockUser(
        deps,
        session,
        BLOCKING_REASONS[outcome.reason],
        { keepsRefreshToken: record.refreshCt !== undefined },
        userBlockedAtTokenEndpoint(record, errors, arrivalMs),
      );
      return error ? failed(error) : SUPERSEDED;
    }
    case "outcome_unknown": {
      // A probe with no answer at all may have rotated the chain as the lost call may have: a
      // second probe could send a token Exact already rotated away. BROKEN (lost_answer).
      if (probing && outcome.status === undefined) return markBroken(deps, session, EventReason.LostAnswer);
      // An answer that proves nothing (a 5xx, a 2xx without tokens) is a new unknown outcome: the
      // chain stays SUSPECT and the next holder probes once more (invariant 5). 502/504 are an
      // outage of the app (outage-pacing.ts): one chain asks for all, at the app's pace. Any other
      // such answer to a probe spends the chain's error budget (Exact counts no 5xx; the budget is
      // what bounds the probes: 8 an hour) and backs off doubling, as a failure streak does.
      const streak = (record.failureStreak ?? 0) + 1;
      const unpacedProbe = probing && pacing.pacedUntilMs === undefined;
      const waitMs =
        pacing.pacedUntilMs !== undefined
          ? pacing.pacedUntilMs - arrivalMs
          : unpacedProbe
            ? backoffMs(streak, deps.random)
            : 2_000;
      written = await session.finish(
        suspect(
          {
            ...(unpacedProbe ? { tokenErrors: afterError(record.tokenErrors, arrivalMs) } : {}),
            failureStreak: streak,
            backoffUntilMs: arrivalMs + waitMs,
            backoffReason: "unavailable",
          },
          arrivalMs,
          record,
        ),
      );
      const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
      const what = outcome.status === undefined ? "got no answer" : `got HTTP ${outcome.status}`;
      return written
        ? failed(
            new ExactUnavailable(
              `token call for connection "${record.connectionId}" ${what}; the chain is being checked`,
              { retryAfterSeconds },
            ),
          )
        : SUPERSEDED;
    }
  }
}

/**
 * What a token endpoint's user block stores besides BLOCKED: the 403 (Exact counts it), the
 * `/current/Me` check its re-check runs (a chain that awaited none gets one: ChainSource.Recheck),
 * and, for a chain that awaited its probe, that it still does (a refusal of the user proves
 * nothing about the lost call).
 */
function userBlockedAtTokenEndpoint(
  record: ChainRecord,
  errors: { readonly tokenErrors?: ReturnType<typeof afterError> },
  arrivalMs: number,
) {
  return {
    ...errors,
    verification: record.verification ?? {
      source: ChainSource.Recheck,
      startedAtMs: record.chainStartedAtMs ?? arrivalMs,
      statusBefore: ChainStatus.Active,
    },
    ...(awaitsProbe(record) ? { unknownOutcomeAtMs: record.unknownOutcomeAtMs ?? arrivalMs } : {}),
  };
}

/** Answers in a row that were neither Exact's OAuth errors nor an outage Exact admits (503, 429). */
export const ODD_ANSWERS_BEFORE_SUSPECT = 3;

/**
 * How old a run of odd answers may grow before the chain is escalated although no other chain
 * of the app refreshed since it began (ms): the app's only chain (one app per customer is the
 * usual case) has none to compare with. Exact's maintenance answers bare 400 pages "for a while
 * at night" (public reports; README, "Exact's answers"): a planned window of a few hours fits
 * well inside 6 (say 00:00 to 06:00), and a chain still answered that way at the start of the
 * next working day is not in maintenance. Its price, when an app-wide outage does last longer:
 * each chain that probes in it past the bound is escalated (SUSPECT, then BROKEN and a login
 * once the probe gets the same), instead of resuming with its refresh token.
 */
export const ODD_RUN_ESCALATES_AFTER_MS = 6 * 60 * 60_000;

/**
 * The chain's run of odd answers (a bare 4xx page, an unknown OAuth error) after this one, or
 * "escalate" when the run is long enough and either the app's other chains refreshed since it
 * began or it is older than ODD_RUN_ESCALATES_AFTER_MS (a chain is not stranded forever).
 */
function oddAnswer(
  record: ChainRecord,
  outcome: Exclude<TokenOutcome, { kind: "tokens" } | { kind: "client_rejected" }>,
  app: AppState,
  atMs: number,
): OddAnswers | "escalate" | undefined {
  const odd =
    outcome.kind === "unavailable" &&
    (outcome.cause === UnavailableCause.Maintenance || outcome.cause === UnavailableCause.Unrecognised);
  if (!odd) return undefined;
  const run = { count: (record.oddAnswers?.count ?? 0) + 1, sinceMs: record.oddAnswers?.sinceMs ?? atMs };
  const othersFine = (app.lastSuccessAtMs ?? 0) > run.sinceMs;
  const tooOld = atMs - run.sinceMs >= ODD_RUN_ESCALATES_AFTER_MS;
  return run.count >= ODD_ANSWERS_BEFORE_SUSPECT && (othersFine || tooOld) ? "escalate" : run;
}

export function exactErrors(record: ChainRecord, outcome: TokenOutcome, atMs: number) {
  return countsAsExactError(outcome) ? { tokenErrors: afterError(record.tokenErrors, atMs) } : {};
}

/**
 * BROKEN, announced: the refresher and waiting vends trigger its heal. A chain that dies while it
 * awaits its identity check (VERIFYING) was never the connection's: the connection goes back to
 * where it was, its own live chain restored (a seed's), or BROKEN (a login's). A BLOCKED chain
 * that dies leaves its connection BLOCKED without a chain: no ChainBroken, no heal.
 */
export async function markBroken(
  deps: EngineDeps,
  session: LeaseSession,
  reason: EventReason,
  budgets: { readonly tokenErrors?: ReturnType<typeof afterError> } = {},
): Promise<ProtocolResult> {
  const back = restoreAfterDeath(session.record, reason);
  const written = await session.finish(
    back
      ? handedOver({ ...back, diedGeneration: session.generation, ...budgets }, deps.now())
      : broken(reason, deps.now(), budgets),
  );
  if (!written) return SUPERSEDED;
  if (back && back.status !== ChainStatus.Broken) return SUPERSEDED;
  deps.log.warn("chain broken", {
    connectionId: session.connectionId,
    reason,
    generation: session.generation,
  });
  await announce(deps, BrokerEventType.ChainBroken, session, reason);
  return { kind: "broken" };
}

/**
 * Where a VERIFYING or BLOCKED chain's connection goes when that chain dies; undefined for any
 * other chain. A blocked user's connection stays BLOCKED without a chain: no login may start a
 * new one for a user Exact refuses, so its re-check becomes a slow login (handedOver).
 */
export function restoreAfterDeath(record: ChainRecord, reason: EventReason) {
  const note = record.verification;
  if (note?.retired) return { restore: note.retired, status: note.retired.status };
  const blockedBy = blockedReason(record);
  if (blockedBy !== undefined) return { status: ChainStatus.Blocked, statusReason: blockedBy };
  if (!note) return undefined;
  if (note.source === ChainSource.Seed && note.statusBefore !== ChainStatus.Broken) {
    return { status: note.statusBefore };
  }
  return { status: ChainStatus.Broken, statusReason: reason };
}
