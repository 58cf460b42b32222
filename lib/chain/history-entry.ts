import type { ChainStatus, LeasePurpose } from "./chain-record.js";

/**
 * What a connection's audit history records, one entry per outcome: the shapes shared by the
 * chain item (entries not yet known to be in a history item), the history items and the CLI.
 * Identifiers, reasons and a refresh token's hash only: never a token or secret.
 */

/** The door an outcome came through (issue 10). */
export const HistoryDoor = {
  /** token-vend, `exact-broker vend`: a consumer asked for a token. */
  Vend: "vend",
  /** The scheduled refresher. */
  Refresh: "refresh",
  /** fallback-login, `exact-broker heal`: a login (a heal, or an implicit chain's next token). */
  Heal: "heal",
  /** `exact-broker connection seed`: an operator's authorization code. */
  Seed: "seed",
  /** The connect link's callback: a person's consent in a browser. */
  Connect: "connect",
  /** `exact-broker connection import`: another system's live chain taken over (chain-import.ts). */
  Import: "import",
} as const;
export type HistoryDoor = (typeof HistoryDoor)[keyof typeof HistoryDoor];

/** What happened. The ones marked "+1" are the writes that bump the generation. */
export const HistoryOutcome = {
  /** +1: Exact rotated the chain and its new pair is stored (with purpose `probe`: the probe proved it alive). */
  Refreshed: "refreshed",
  /** +1: a login or a code exchange started a new chain, stored VERIFYING (a login's success). */
  ChainStarted: "chain_started",
  /** `/current/Me` showed the chain is this connection's: ACTIVE. */
  Verified: "verified",
  /** +1: the chain being verified belongs to the user `peer` holds; it went there, this connection went back. */
  HandedOver: "handed_over",
  /** +1: a chain awaiting its check died or was not this connection's; the connection went back to what it had. */
  ChainDropped: "chain_dropped",
  /** +1: another connection's code exchange started this connection's user's chain; it landed here from `peer`. */
  Received: "received",
  /** A token call's outcome is unknown (or its holder vanished): one probe follows. */
  Suspect: "suspect",
  /** The probe's answer proved the chain alive without rotating it (too early). */
  ProbeAlive: "probe_alive",
  /** The probe's answer proved nothing (Exact unavailable, rate-limited): the chain stays SUSPECT. */
  ProbeInconclusive: "probe_inconclusive",
  /** Exact no longer accepts the chain (`reason`); a login heals it. */
  Broken: "broken",
  /** Exact refuses the chain's user (`reason`). */
  Blocked: "blocked",
  /** A login failed in a way that may pass (`reason`); it backs off. */
  LoginFailed: "login_failed",
  /** Nothing automatic can help (`reason`): an operator must act. */
  ReauthRequired: "reauth_required",
} as const;
export type HistoryOutcome = (typeof HistoryOutcome)[keyof typeof HistoryOutcome];

/** The outcomes whose write bumps the generation: every committed generation has one. */
export const GENERATION_OUTCOMES: ReadonlySet<HistoryOutcome> = new Set([
  HistoryOutcome.Refreshed,
  HistoryOutcome.ChainStarted,
  HistoryOutcome.HandedOver,
  HistoryOutcome.ChainDropped,
  HistoryOutcome.Received,
]);

/** What a write under a lease records besides its attributes (lease-transitions.ts builders). */
export interface HistoryNote {
  readonly outcome: HistoryOutcome;
  readonly reason?: string;
  /** The other connection of a hand-over. */
  readonly peer?: string;
}

/** Who asked, for the entries of one lease (or one unleased write). */
export interface HistoryContext {
  readonly door: HistoryDoor;
  /** The caller's identity when known: token-vend passes the AWS principal ARN STS verified. */
  readonly caller?: string;
  /** How long history items are kept (HISTORY_DAYS): their DynamoDB TTL. */
  readonly keepDays: number;
}

/** One outcome of a connection's chain. */
export interface HistoryEntry {
  /** Epoch ms (the writer's clock) when the write that recorded it was made. */
  readonly atMs: number;
  /** The chain's generation after the outcome. */
  readonly generation: number;
  readonly door: HistoryDoor;
  /** What the lease was taken for (`refresh`, `probe`, `heal`, `login`, `onboard`, `verify`); absent on unleased writes. */
  readonly purpose?: LeasePurpose;
  readonly outcome: HistoryOutcome;
  /** An event reason (lib/events/broker-events.ts) where the outcome has one. */
  readonly reason?: string;
  readonly caller?: string;
  /** The hash of the refresh token the chain holds after the outcome (`refreshHash`: 16 hex of its SHA-256). */
  readonly refreshHash?: string;
  readonly status: ChainStatus;
  readonly peer?: string;
}

/**
 * The entries of a chain item are capped (a chain failing for days keeps adding backoffs and
 * failed logins without a new generation); the oldest go first. 20 entries are about 4 KB.
 */
export const MAX_PENDING_ENTRIES = 20;

/** Entries are written more than once (at least once each, see history-store.ts); the same fact has the same key. */
function keyOf(entry: HistoryEntry): string {
  return `${entry.generation}|${entry.atMs}|${entry.outcome}|${entry.purpose ?? ""}|${entry.door}`;
}

/** Entries from several history items and the chain item, each fact once, newest first. */
export function mergeEntries(batches: ReadonlyArray<readonly HistoryEntry[]>): HistoryEntry[] {
  const seen = new Map<string, { entry: HistoryEntry; order: number }>();
  let order = 0;
  for (const batch of batches) {
    for (const entry of batch) {
      const key = keyOf(entry);
      if (!seen.has(key)) seen.set(key, { entry, order });
      order += 1;
    }
  }
  return [...seen.values()]
    .sort(
      (a, b) => b.entry.atMs - a.entry.atMs || b.entry.generation - a.entry.generation || b.order - a.order,
    )
    .map(({ entry }) => entry);
}
