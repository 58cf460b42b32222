import type { EventReason } from "../events/broker-events.js";
import {
  BLOCKED_LOGIN_RECHECK_MS,
  CHAIN_STARTING_PURPOSES,
  type ChainAttributeName,
  type ChainAttributes,
  type ChainRecord,
  ChainStatus,
  type ErrorBudget,
  type HandOverNote,
  type OddAnswers,
  type RetiredChain,
  type VerificationNote,
} from "./chain-record.js";
import { type HistoryNote, HistoryOutcome } from "./history-entry.js";
import { dueIndexFields } from "./refresh-dispatch.js";
import type { SealedTokens } from "./token-seal.js";
import type { UpdateParts } from "./update-expression.js";

declare const transitionBrand: unique symbol;

/**
 * What the write that ends a lease stores besides ending it (LeaseSession.finish). Only the
 * builders make one: every way a lease can end is listed in this file and, for the outcomes of
 * `/current/Me` checks, in check-transitions.ts, typed.
 */
export interface Transition {
  readonly set?: Partial<ChainAttributes>;
  readonly remove?: readonly ChainAttributeName[];
  /** Set when the transition bumps the generation (`#generation = #generation + :one`). */
  readonly computed?: readonly string[];
  /** The outcome the write records in the connection's history (history-log.ts), if any. */
  readonly history?: HistoryNote;
  readonly [transitionBrand]: true;
}

/** A chain's budgets and backoff after a failure: what a vend reports and when to try again. */
export interface Backoff {
  readonly backoffUntilMs: number;
  readonly backoffReason: "throttled" | "unavailable";
  readonly failureStreak?: number;
  readonly tokenErrors?: ErrorBudget;
}

export const TOKEN_ATTRS = [
  "accessCt",
  "accessIssuedAtMs",
  "accessExpiresAtMs",
  "windowOpensAtMs",
  "refreshCt",
  "refreshIssuedAtMs",
  "refreshHash",
  "chainStartedAtMs",
] as const satisfies readonly ChainAttributeName[];

/** The lease and its write-ahead note: what every write that ends a lease removes. */
export const LEASE_ATTRS = [
  "leaseOwner",
  "leaseUntilMs",
  "leasePurpose",
  "inflight",
] as const satisfies readonly ChainAttributeName[];

export const BACKOFF_ATTRS = [
  "backoffUntilMs",
  "backoffReason",
] as const satisfies readonly ChainAttributeName[];

const BUMP = ["#generation = #generation + :one"];

/** Brands `parts` as a Transition: for the builders (this file, check-transitions.ts), never elsewhere. */
export function transition(parts: Omit<Transition, typeof transitionBrand>): Transition {
  return parts as Transition;
}

export function tokenAttributes(tokens: SealedTokens): Partial<ChainAttributes> {
  return { ...tokens.refresh, ...tokens.access };
}

/** The chain's place in the refresher's sparse index, set at `nowMs` (refresh-dispatch.ts dueIndexFields). */
export function dueAt(dueAtMs: number | undefined, nowMs: number): Partial<ChainAttributes> {
  return dueAtMs === undefined ? {} : dueIndexFields(dueAtMs, nowMs);
}

/**
 * When a holder that lost its lease (it stalled past it) may still land Exact's answer: the
 * generation is the one it started from (nobody committed since), or the one after it when
 * that step was only the death of the chain it refreshed (`diedGeneration`: a probe with the
 * token this holder had already rotated), and no chain-starting holder (a login, a code
 * exchange, whose chain always wins) has or had the lease, nor is a heal under way. Then its
 * tokens are the live chain.
 */
export function rescueCondition(
  generation: number,
  incarnation: string,
): Required<Pick<UpdateParts, "condition" | "names" | "values">> {
  return {
    condition:
      "(#generation = :gen OR (#generation = :afterDeath AND #diedGeneration = :gen)) AND " +
      "#incarnation = :inc AND #status <> :healing AND " +
      `(attribute_not_exists(#leasePurpose) OR NOT (#leasePurpose IN (${CHAIN_STARTING_PURPOSES.map((_, i) => `:p${i}`).join(", ")})))`,
    names: ["generation", "diedGeneration", "incarnation", "status", "leasePurpose"],
    values: {
      gen: generation,
      afterDeath: generation + 1,
      inc: incarnation,
      healing: ChainStatus.Healing,
      ...Object.fromEntries(CHAIN_STARTING_PURPOSES.map((purpose, i) => [`p${i}`, purpose])),
    },
  };
}

/** The hand-over is decided (written before the other connection is touched; the lease is kept). */
export function handingOver(note: HandOverNote): Transition {
  return transition({ set: { handOver: note } });
}

/** Nothing but the lease's end. */
export const RELEASE: Transition = transition({});

/**
 * The verified chain is not this connection's (another connection holds its user, or a login
 * reached the wrong user): the chain it replaced comes back, or the connection returns to
 * `status` without tokens. Bumps the generation, so nobody serves the handed-over tokens here.
 */
export function handedOver(
  args: {
    readonly restore?: RetiredChain;
    readonly status: ChainStatus;
    /** An EventReason; for BLOCKED, the block's (which `status` keeps). */
    readonly statusReason?: string;
    readonly lastLoginFailure?: EventReason;
    /** The answer that ended the chain counts against the chain's budget (a 4xx Exact counts). */
    readonly tokenErrors?: ErrorBudget;
    /** The chain's death gave the connection back: the generation that died (`diedGeneration`). */
    readonly diedGeneration?: number;
    /** The connection the chain went to (history only: `handed_over`, else `chain_dropped`). */
    readonly to?: string;
  },
  nowMs: number,
): Transition {
  const { restore } = args;
  // A restored chain needs the refresher's care again; a BROKEN connection needs its heal; a
  // BLOCKED one without a chain, its re-check by a login, at that re-check's slow pace.
  const dueAtMs =
    restore !== undefined || args.status === ChainStatus.Broken
      ? nowMs
      : args.status === ChainStatus.Blocked
        ? nowMs + BLOCKED_LOGIN_RECHECK_MS
        : undefined;
  const due = dueAtMs !== undefined;
  const restored: Partial<ChainAttributes> = {};
  for (const attr of TOKEN_ATTRS)
    if (restore?.[attr] !== undefined) Object.assign(restored, { [attr]: restore[attr] });
  return transition({
    set: {
      ...restored,
      status: restore?.status ?? args.status,
      statusChangedAtMs: nowMs,
      ...(args.statusReason ? { statusReason: args.statusReason } : {}),
      ...(args.lastLoginFailure ? { lastLoginFailure: args.lastLoginFailure } : {}),
      ...(args.diedGeneration !== undefined ? { diedGeneration: args.diedGeneration } : {}),
      ...(args.tokenErrors ? { tokenErrors: args.tokenErrors } : {}),
      ...dueAt(dueAtMs, nowMs),
    },
    remove: [
      "verification",
      "handOver",
      "identityChecks",
      "unknownOutcomeAtMs",
      ...TOKEN_ATTRS.filter((attr) => restored[attr] === undefined),
      ...(args.statusReason ? [] : (["statusReason"] as const)),
      ...(due ? [] : (["dueShard", "dueAtMs"] as const)),
    ],
    computed: BUMP,
    history:
      args.to !== undefined
        ? { outcome: HistoryOutcome.HandedOver, peer: args.to }
        : {
            outcome: HistoryOutcome.ChainDropped,
            ...((args.statusReason ?? args.lastLoginFailure)
              ? { reason: args.statusReason ?? args.lastLoginFailure }
              : {}),
          },
  });
}

/**
 * Outcome unknown: Exact may have rotated the chain. The next holder probes once (invariant 5).
 * A BLOCKED chain stays BLOCKED (its user is refused whatever the probe finds) and notes the
 * unknown outcome instead (`unknownOutcomeAtMs`).
 */
export function suspect(backoff: Backoff, nowMs: number, record: Pick<ChainRecord, "status">): Transition {
  const history: HistoryNote = { outcome: HistoryOutcome.Suspect, reason: "lost_answer" };
  if (record.status === ChainStatus.Blocked) {
    return transition({ set: { ...backoff, unknownOutcomeAtMs: nowMs }, history });
  }
  return transition({
    set: { ...backoff, status: ChainStatus.Suspect, statusReason: "lost_answer", statusChangedAtMs: nowMs },
    history,
  });
}

/** Exact no longer accepts the chain: BROKEN, due at once so the refresher triggers its heal. */
export function broken(
  reason: EventReason,
  nowMs: number,
  budgets: Pick<Backoff, "tokenErrors"> = {},
): Transition {
  return transition({
    set: {
      ...budgets,
      ...dueAt(nowMs, nowMs),
      status: ChainStatus.Broken,
      statusReason: reason,
      statusChangedAtMs: nowMs,
    },
    remove: [...BACKOFF_ATTRS, "unknownOutcomeAtMs"],
    history: { outcome: HistoryOutcome.Broken, reason },
  });
}

/**
 * Exact refuses the user: BLOCKED, due again for its re-check; the chain and any pending check are
 * kept. `extra`, when the token endpoint refused: the 403 Exact counts, the check the re-check
 * runs (`verification`, for a chain that had none), a still unprobed unknown outcome.
 */
export function blocked(
  reason: EventReason,
  recheckAtMs: number,
  nowMs: number,
  extra: {
    readonly tokenErrors?: ErrorBudget;
    readonly verification?: VerificationNote;
    readonly unknownOutcomeAtMs?: number;
  } = {},
): Transition {
  return transition({
    set: {
      ...extra,
      ...dueAt(recheckAtMs, nowMs),
      status: ChainStatus.Blocked,
      statusReason: reason,
      statusChangedAtMs: nowMs,
    },
    remove: BACKOFF_ATTRS,
    history: { outcome: HistoryOutcome.Blocked, reason },
  });
}

/** Nothing automatic can help: REAUTH_REQUIRED, out of the refresher's index. */
export function needsOperator(
  reason: EventReason,
  nowMs: number,
  extra: { readonly tokenErrors?: ErrorBudget; readonly lastLoginFailure?: EventReason } = {},
): Transition {
  return transition({
    set: { ...extra, status: ChainStatus.ReauthRequired, statusReason: reason, statusChangedAtMs: nowMs },
    remove: ["dueShard", "dueAtMs", "unknownOutcomeAtMs"],
    history: { outcome: HistoryOutcome.ReauthRequired, reason },
  });
}

/**
 * A failure that may pass (Exact down, rate-limited, too early, a failed login or identity
 * check): budgets and when to try again, and `status` when the answer proved something (which
 * settles a BLOCKED chain's unknown outcome: `unknownOutcomeAtMs` goes).
 */
export function backedOff(
  backoff: Backoff,
  nowMs: number,
  chain: {
    readonly status?: ChainStatus;
    readonly windowOpensAtMs?: number;
    readonly dueAtMs?: number;
    readonly loginFailures?: ErrorBudget;
    readonly lastLoginFailure?: EventReason;
    readonly identityChecks?: ErrorBudget;
    readonly oddAnswers?: OddAnswers;
  } = {},
): Transition {
  const { dueAtMs, status, ...rest } = chain;
  return transition({
    set: {
      ...backoff,
      ...rest,
      ...dueAt(dueAtMs, nowMs),
      ...(status ? { status, statusChangedAtMs: nowMs } : {}),
    },
    remove: [
      ...(status === ChainStatus.Active ? (["statusReason"] as const) : []),
      ...(status ? (["unknownOutcomeAtMs"] as const) : []),
    ],
    // A failed login is an outcome; other backoffs are not (an outage would flood the history).
    ...(chain.lastLoginFailure
      ? { history: { outcome: HistoryOutcome.LoginFailed, reason: chain.lastLoginFailure } }
      : {}),
  });
}
