import type { ChainRecord, LeasePurpose } from "./chain-record.js";
import {
  type ChainAttributeName,
  type ChainAttributes,
  ChainStatus,
  type ErrorBudget,
  type VerificationNote,
} from "./chain-record.js";
import type { LeaseWriter } from "./chain-table-client.js";
import type { SessionHistory } from "./history-log.js";
import { BACKOFF_ATTRS, type Backoff, dueAt, LEASE_ATTRS, tokenAttributes } from "./lease-transitions.js";
import type { SealedTokens } from "./token-seal.js";
import type { UpdateParts } from "./update-expression.js";

/*
 * What the two persisting writes store: Exact's answer to a refresh (LeaseSession.commitRefresh)
 * and a chain Exact has started (LeaseSession.storeStartedChain). The session adds the conditions,
 * the generation bump and what happens to the lease.
 */

/** What a refresh's persisting write stores (LeaseSession.commitRefresh). */
export interface RefreshedChain {
  readonly tokens: SealedTokens;
  readonly status: ChainStatus;
  readonly dueAtMs: number;
  readonly vendedAtMs?: number;
  /** A refusal that still carried a new refresh token: the chain advances and backs off. */
  readonly refusal?: Backoff;
  /**
   * Set when Exact's success (a 2xx, or a 5xx after processing) carried a refresh token but no
   * access token: the stored access token
   * (the previous generation's) goes, and `windowOpensAtMs` says when the next refresh, which
   * brings one, is accepted. Until then a vend has nothing to serve (a retryable Throttled).
   */
  readonly withoutAccess?: { readonly windowOpensAtMs: number };
}

type Change = { readonly set: Partial<ChainAttributes>; readonly remove: ChainAttributeName[] };

/** The tokens of a refresh (the session adds the generation bump and the lease's end). */
export function refreshed(args: RefreshedChain, nowMs: number): Change {
  return {
    set: {
      ...tokenAttributes(args.tokens),
      ...dueAt(args.dueAtMs, nowMs),
      ...(args.vendedAtMs !== undefined ? { lastVendAtMs: args.vendedAtMs } : {}),
      ...args.refusal,
      ...args.withoutAccess,
      status: args.status,
      statusChangedAtMs: nowMs,
      failureStreak: 0,
    },
    // A BLOCKED chain keeps saying why (Exact refuses its user; a refresh does not change that).
    remove: [
      ...(args.status === ChainStatus.Blocked ? [] : (["statusReason"] as const)),
      "oddAnswers",
      // Tokens settle an unknown outcome: the chain is alive.
      "unknownOutcomeAtMs",
      ...(args.refusal ? [] : BACKOFF_ATTRS),
      ...(args.withoutAccess ? (["accessCt", "accessIssuedAtMs", "accessExpiresAtMs"] as const) : []),
    ],
  };
}

/** What a chain start's persisting write stores (LeaseSession.storeStartedChain). */
export interface StartedChainArgs {
  readonly tokens: SealedTokens;
  readonly note: VerificationNote;
  /** How long the lease is kept for the identity check (ms). */
  readonly leaseMs: number;
  readonly vendedAtMs?: number;
  readonly loginFailures?: ErrorBudget;
  /** The answer that started the chain was a 4xx that still carried tokens: Exact counts it. */
  readonly tokenErrors?: ErrorBudget;
  /**
   * The call that would have started it got no answer (an import's refresh, chain-import.ts):
   * the token sent is stored SUSPECT (`lost_answer`), so its next token call is the one probe
   * (invariant 5); its identity check follows the probe, as a VERIFYING chain's does.
   */
  readonly unknownOutcome?: boolean;
}

/** A new chain, VERIFYING (or SUSPECT: `unknownOutcome`), with `lease` (the renewed lease for its check) and due at once. */
export function startedChain(args: StartedChainArgs, nowMs: number, lease: Partial<ChainAttributes>): Change {
  return {
    set: {
      ...tokenAttributes(args.tokens),
      ...lease,
      ...dueAt(nowMs, nowMs),
      ...(args.loginFailures ? { loginFailures: args.loginFailures } : {}),
      ...(args.tokenErrors ? { tokenErrors: args.tokenErrors } : {}),
      ...(args.unknownOutcome
        ? { status: ChainStatus.Suspect, statusReason: "lost_answer" }
        : { status: ChainStatus.Verifying }),
      statusChangedAtMs: nowMs,
      verification: args.note,
      chainStartedAtMs: args.note.startedAtMs,
      failureStreak: 0,
      ...(args.vendedAtMs !== undefined ? { lastVendAtMs: args.vendedAtMs } : {}),
    },
    // A new chain replaces both tokens: an implicit login brings no refresh token, an answer
    // without an access token none of those; nothing of the chain before may remain.
    remove: [
      // The re-check of a BLOCKED user (its login's chain) keeps the block's reason until its check.
      ...(args.note.statusBefore === ChainStatus.Blocked || args.unknownOutcome
        ? []
        : (["statusReason"] as const)),
      "identityChecks",
      "unknownOutcomeAtMs",
      ...BACKOFF_ATTRS,
      ...(args.tokens.refresh ? [] : (["refreshCt", "refreshHash", "refreshIssuedAtMs"] as const)),
      ...(args.tokens.access
        ? []
        : (["accessCt", "accessIssuedAtMs", "accessExpiresAtMs", "windowOpensAtMs"] as const)),
    ],
  };
}

/** The holder a condition names: its fence on the connection's incarnation. */
interface Holder {
  readonly fence: number;
  readonly incarnation: string;
}

/**
 * A chain start lands while the holder's fence holds, whatever the generation (a new chain at
 * Exact ends every older one), unless a chain that started later is stored: that one is the live
 * one, ours died when it started. Equal start times: this very write, repeated.
 */
export function startedChainCondition(
  holder: Holder,
  startedAtMs: number,
): Omit<UpdateParts, "set" | "remove"> {
  return {
    computed: ["#generation = #generation + :one"],
    condition:
      "#leaseFence = :fence AND #incarnation = :inc AND " +
      "(attribute_not_exists(#chainStartedAtMs) OR #chainStartedAtMs <= :started)",
    names: ["leaseFence", "incarnation", "generation", "chainStartedAtMs"],
    values: { fence: holder.fence, inc: holder.incarnation, one: 1, started: startedAtMs },
  };
}

/** The lease's end alone, on the holder's fence (after a chain start found a later chain stored). */
export function releaseOnFence(holder: Holder): UpdateParts {
  return {
    remove: LEASE_ATTRS,
    condition: "#leaseFence = :fence AND #incarnation = :inc",
    names: ["leaseFence", "incarnation"],
    values: { fence: holder.fence, inc: holder.incarnation },
  };
}

export type CommitResult = "committed" | "committed_after_lease_lost" | "superseded";

/** What ChainStore.acquire hands a new session. */
export interface LeaseSessionOptions {
  readonly writer: LeaseWriter;
  readonly now: () => number;
  /** Waits between attempts of a persisting write. */
  readonly sleep: (ms: number) => Promise<void>;
  readonly record: ChainRecord;
  readonly owner: string;
  readonly fence: number;
  readonly untilMs: number;
  readonly purpose: LeasePurpose;
  readonly incarnation: string;
  /** Epoch ms: the invocation's deadline. */
  readonly deadlineMs?: number;
  /** The lease's part in the connection's history (history-log.ts). */
  readonly history: SessionHistory;
}
