import type { AccessCheck } from "./access-check.js";
import type { HistoryEntry } from "./history-entry.js";

/** Where a chain stands; the status machine is drawn in chain-store.ts, beside the lease timeline. */
export const ChainStatus = {
  /** Added by an operator, never connected to Exact. */
  New: "NEW",
  Active: "ACTIVE",
  /**
   * Exact started this chain (a login, a code exchange) and it is stored, but `/current/Me` has
   * not yet shown whose it is. Never served to a vend; a later lease finishes the check.
   */
  Verifying: "VERIFYING",
  /** A token call's outcome is unknown: Exact may have rotated the chain. One probe decides. */
  Suspect: "SUSPECT",
  /** Exact no longer accepts the chain; a login must start a new one. */
  Broken: "BROKEN",
  Healing: "HEALING",
  /** Nothing automatic can help; an operator must act (see statusReason). */
  ReauthRequired: "REAUTH_REQUIRED",
  /**
   * Exact refuses the chain's user (`Reason` BlockedUser, InactiveUser, LicenseExpired,
   * NoDivisionAccess: statusReason): no login can fix it. Not served; while a chain is kept,
   * re-checked with `/current/Me` every BLOCKED_RECHECK_MS; without one (implicit mode, or Exact
   * ended it), by a login every BLOCKED_LOGIN_RECHECK_MS. Back by itself when Exact accepts the
   * user again. Stays BLOCKED through a token call's unknown outcome (`unknownOutcomeAtMs`).
   */
  Blocked: "BLOCKED",
} as const;
export type ChainStatus = (typeof ChainStatus)[keyof typeof ChainStatus];

export const ConnectionMode = { Code: "code", Implicit: "implicit" } as const;
export type ConnectionMode = (typeof ConnectionMode)[keyof typeof ConnectionMode];

/** What a lease holder is doing; written with the lease as the write-ahead note. */
export const LeasePurpose = {
  Refresh: "refresh",
  Probe: "probe",
  /** A login that starts a new chain for a broken connection. */
  Heal: "heal",
  /** An implicit-mode login: the normal way such a chain gets its next access token. */
  Login: "login",
  /** A code exchange for this connection (`connection seed`, the connect callback). */
  Onboard: "onboard",
  /** The `/current/Me` check of a chain stored as VERIFYING. */
  Verify: "verify",
} as const;
export type LeasePurpose = (typeof LeasePurpose)[keyof typeof LeasePurpose];

/** Purposes whose token call or login starts a new chain at Exact: such a chain always wins. */
export const CHAIN_STARTING_PURPOSES: readonly LeasePurpose[] = [
  LeasePurpose.Heal,
  LeasePurpose.Login,
  LeasePurpose.Onboard,
  LeasePurpose.Verify,
];

/**
 * Which door started a chain that is being verified. `recheck`: no door; a live chain whose user
 * Exact refused at the token endpoint (token-refusals.ts), checked again with `/current/Me` as a
 * started chain would be.
 */
export const ChainSource = { Seed: "seed", Heal: "heal", Login: "login", Recheck: "recheck" } as const;
export type ChainSource = (typeof ChainSource)[keyof typeof ChainSource];

/** Who chose a connection's pinned division. */
export const DivisionPinnedBy = {
  /** `connection add --division`, `connection set-division`. */
  Operator: "operator",
  /** Not given: the division `/current/Me` showed when the chain was first verified. */
  Consent: "consent",
} as const;
export type DivisionPinnedBy = (typeof DivisionPinnedBy)[keyof typeof DivisionPinnedBy];

/** Configuration an operator gives when adding a connection. */
export interface ConnectionConfig {
  readonly connectionId: string;
  readonly clientId: string;
  readonly baseUrl: string;
  readonly redirectUri: string;
  readonly secretId: string;
  readonly mode: ConnectionMode;
  /**
   * The division consumers are given, chosen by the operator (`--division`). Without it the
   * connection pins the one `/current/Me` shows at its first verified chain. Once pinned, it
   * changes only by `connection set-division`: never by a heal or any later identity check
   * (Exact's `CurrentDivision` follows the company the user last opened in the browser).
   */
  readonly pinnedDivision?: number;
}

/**
 * Write-ahead note: set by the same write that takes the lease, cleared by the write that ends
 * it. A note whose lease has expired means its holder died mid-protocol, perhaps after Exact
 * rotated the chain, so the next holder must treat the chain as suspect.
 */
export interface InflightNote {
  readonly owner: string;
  readonly generation: number;
  readonly purpose: LeasePurpose;
  readonly startedAtMs: number;
}

/** When recent failures happened (epoch ms), newest last. */
export interface ErrorBudget {
  readonly errorAtMs: readonly number[];
}

/**
 * The token attributes of a chain, encrypted; also what a chain start keeps of the chain it
 * replaced. The ciphertexts are base64 here and binary in the item (chain-item.ts).
 */
export interface ChainTokens {
  readonly accessCt?: string;
  readonly accessIssuedAtMs?: number;
  readonly accessExpiresAtMs?: number;
  /** First moment Exact will accept a refresh of this generation (arrival + life − window + margin). */
  readonly windowOpensAtMs?: number;
  readonly refreshCt?: string;
  readonly refreshIssuedAtMs?: number;
  readonly refreshHash?: string;
  /**
   * When Exact started this chain (the arrival of the code exchange or login that started it;
   * refreshes keep it). Of two chains of one user, the later start is the live one: a chain start
   * or a hand-over never replaces a chain that started later.
   */
  readonly chainStartedAtMs?: number;
}

/** The live chain a code exchange replaced before its identity was known; restored if the new one is not ours. */
export interface RetiredChain extends ChainTokens {
  readonly status: ChainStatus;
  readonly generation: number;
}

/** Present while the chain is VERIFYING: where it came from and what to go back to. */
export interface VerificationNote {
  readonly source: ChainSource;
  readonly startedAtMs: number;
  /** The connection's status before the chain start, restored if the chain belongs to another connection. */
  readonly statusBefore: ChainStatus;
  readonly retired?: RetiredChain;
}

/**
 * Written under the lease of a VERIFYING chain just before it is handed to the connection that
 * holds its Exact user: while it is set the chain is not refreshed here (the other connection
 * may already hold it), and a later lease finishes the hand-over without asking Exact again.
 */
export interface HandOverNote {
  /** The connection that holds the chain's user; absent when nobody does (a login of the wrong user). */
  readonly to?: string;
  readonly exactUserId: string;
  readonly exactUserName: string;
  readonly division: number | null;
  /** What becomes of this connection afterwards. */
  readonly afterwards: "restore" | "wrong_user" | "duplicate_user";
}

/** A run of odd answers (a bare 4xx page, an unknown OAuth error) to this chain's refreshes. */
export interface OddAnswers {
  readonly count: number;
  /** When the run began (epoch ms): another chain's success after it shows the trouble is this chain's. */
  readonly sinceMs: number;
}

/** One connection's item, typed. Attribute names are the DynamoDB attribute names. */
export interface ChainRecord extends ConnectionConfig, ChainTokens {
  readonly createdAtMs: number;
  /**
   * Set when the connection is added (items written before incarnations get one on their next
   * lease): part of every conditional write and of the tokens' encryption context, so a removed
   * and re-added connection never receives a write or a ciphertext meant for its predecessor.
   */
  readonly incarnation?: string;
  readonly status: ChainStatus;
  readonly statusReason?: string;
  readonly statusChangedAtMs?: number;
  /** +1 on every new token pair; 0 until the first one. Only ever grows. */
  readonly generation: number;
  readonly exactUserId?: string;
  readonly exactUserName?: string;
  /**
   * The division a vend answers. Equal to `pinnedDivision` once one is pinned (every write that
   * sets it keeps it so); before that (items written before pinning existed), what
   * `/current/Me` showed at the last identity check.
   */
  readonly division?: number | null;
  readonly divisionPinnedBy?: DivisionPinnedBy;
  readonly verification?: VerificationNote;
  readonly handOver?: HandOverNote;

  readonly leaseOwner?: string;
  readonly leaseFence: number;
  readonly leaseUntilMs?: number;
  readonly leasePurpose?: LeasePurpose;
  readonly inflight?: InflightNote;

  /** The last vend recorded (at most once per token lifetime: timing.ts needsHotMark). */
  readonly lastVendAtMs?: number;
  readonly dueShard?: string;
  readonly dueAtMs?: number;

  readonly tokenErrors?: ErrorBudget;
  /** Failed logins in the last hour (at most 3 are risked: Exact locks accounts). */
  readonly loginFailures?: ErrorBudget;
  readonly lastLoginFailure?: string;
  /** Failed `/current/Me` checks in the last hour: of a VERIFYING chain, or of a token reported refused. */
  readonly identityChecks?: ErrorBudget;
  /** The `/current/Me` check of a token a consumer reported refused (access-check.ts): one per generation. */
  readonly accessCheck?: AccessCheck;
  readonly backoffUntilMs?: number;
  /** Which error a vend reports while the chain backs off. */
  readonly backoffReason?: "throttled" | "unavailable";
  readonly failureStreak?: number;
  readonly oddAnswers?: OddAnswers;
  /**
   * A BLOCKED chain's token call got no answer at (epoch ms): its next token call is the probe,
   * as a SUSPECT chain's is (invariant 5), while it stays BLOCKED (vends answer UserBlocked
   * whatever the probe finds). Removed by the write that settles the outcome.
   */
  readonly unknownOutcomeAtMs?: number;
  /** Token-endpoint calls today (UTC), against Exact's announced daily cap (token-call-cap.ts). */
  readonly tokenCalls?: { readonly day: number; readonly count: number };
  /** Refresh hash of the last chain handed to this connection by another's code exchange (idempotence). */
  readonly adoptedHash?: string;
  /**
   * The generation of a VERIFYING or BLOCKED chain that Exact refused and that gave the
   * connection back what it had (token-refusals.ts `restoreAfterDeath`, one generation up). A
   * holder that stalled while refreshing that chain holds its continuation, then the only live
   * chain of the user: its late persisting write may still land while nothing else changed the
   * tokens since (lease-transitions.ts `rescueCondition`).
   */
  readonly diedGeneration?: number;
  /**
   * Audit entries not yet known to be in a history item (history-store.ts): set or appended by
   * the write that records each outcome, at most MAX_PENDING_ENTRIES. Never a token.
   */
  readonly history?: readonly HistoryEntry[];
}

/** The attributes a write may set: a record's, minus the key and the values only a computation may set. */
export type ChainAttributes = Omit<ChainRecord, "leaseFence" | "generation">;
export type ChainAttributeName = keyof ChainRecord;

/** Milliseconds of validity the current access token still has (0 if none). */
export function accessValidityMs(record: ChainRecord, nowMs: number): number {
  return record.accessCt && record.accessExpiresAtMs ? Math.max(0, record.accessExpiresAtMs - nowMs) : 0;
}

/** Statuses whose current access token may be handed to a consumer. */
export function servable(record: ChainRecord): boolean {
  return (
    record.status === ChainStatus.Active ||
    record.status === ChainStatus.Suspect ||
    record.status === ChainStatus.Broken ||
    record.status === ChainStatus.Healing
  );
}

/**
 * The status a chain returns to after Exact accepted its refresh token: still BLOCKED (Exact
 * refreshes a blocked user's chain; only /current/Me tells), VERIFYING until its identity is
 * known, else ACTIVE.
 */
export function healthyStatus(record: Pick<ChainRecord, "verification" | "status">): ChainStatus {
  if (record.status === ChainStatus.Blocked) return ChainStatus.Blocked;
  return record.verification ? ChainStatus.Verifying : ChainStatus.Active;
}

/** How often a BLOCKED chain's user is checked again with /current/Me (ms): slow, each refusal is an Exact error. */
export const BLOCKED_RECHECK_MS = 30 * 60_000;

/**
 * How often a BLOCKED connection without a chain (implicit mode: its token expires in 10 minutes;
 * or Exact ended the chain) re-checks its user by logging in (ms). Much slower than
 * BLOCKED_RECHECK_MS: each re-check spends a login and a TOTP step as a user Exact refuses, so
 * recovery by itself may take up to 6 hours here; `exact-broker heal` re-checks at once.
 */
export const BLOCKED_LOGIN_RECHECK_MS = 6 * 60 * 60_000;

/** Whether the next token call of this chain is the probe of an unknown outcome (invariant 5). */
export function awaitsProbe(record: Pick<ChainRecord, "status" | "unknownOutcomeAtMs">): boolean {
  return record.status === ChainStatus.Suspect || record.unknownOutcomeAtMs !== undefined;
}

/**
 * The reason Exact refuses the connection's user, when it is BLOCKED or re-checking a block
 * (a chain started by the re-check's login, still VERIFYING); undefined otherwise.
 */
export function blockedReason(
  record: Pick<ChainRecord, "status" | "statusReason" | "verification">,
): string | undefined {
  const blocked =
    record.status === ChainStatus.Blocked ||
    (record.status === ChainStatus.Verifying && record.verification?.statusBefore === ChainStatus.Blocked);
  return blocked ? (record.statusReason ?? "blocked") : undefined;
}
