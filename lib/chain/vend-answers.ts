import { ReauthRequired, TokenDecryptError, UserBlocked } from "../errors.js";
import { blockedReason, type ChainRecord, ChainStatus, ConnectionMode } from "./chain-record.js";
import type { EngineDeps } from "./engine-deps.js";
import { reauthMessage } from "./refusal-errors.js";
import { needsHotMark } from "./timing.js";
import { answeredAt, type TokenCache, type VendAnswer } from "./token-cache.js";
import type { FreshAccess } from "./token-protocol.js";

/** A due time this far past the window is a keep-alive date (days), not a claim's or a retry's (minutes). */
const PARKED_AFTER_WINDOW_MS = 60 * 60_000;

/**
 * Whether the chain waits for its keep-alive (or is out of the index) rather than its window: a
 * vend then moves it back to the window. Not a chain due at its window already (nothing to
 * write), nor one whose due time is a dispatcher's claim or a backoff: those say when its work
 * may run again, and a vend must not undo them.
 */
function parkedPastWindow(record: ChainRecord, windowAtMs: number, nowMs: number): boolean {
  if ((record.backoffUntilMs ?? 0) > nowMs) return false;
  return (
    record.dueShard === undefined ||
    (record.dueAtMs ?? Number.POSITIVE_INFINITY) > windowAtMs + PARKED_AFTER_WINDOW_MS
  );
}

/** What a vend answers, from the item or from a token just obtained; each answer also fills the warm cache. */
export class VendAnswers {
  readonly #deps: EngineDeps;
  readonly #cache: TokenCache;

  constructor(deps: EngineDeps, cache: TokenCache) {
    this.#deps = deps;
    this.#cache = cache;
  }

  /**
   * Decrypts and returns the item's current token if, once decrypted, it still has `needMs` of
   * validity (a slow KMS call must not shorten an answer below the ask), and records that the
   * chain is hot: at most one write per token lifetime (later vends see a recent lastVendAtMs and
   * write nothing), and one that puts an idle chain back at its window.
   */
  async current(record: ChainRecord, needMs: number): Promise<VendAnswer | undefined> {
    let accessToken: string;
    try {
      accessToken = await this.#deps.cipher.decrypt(record.accessCt ?? "", {
        connectionId: record.connectionId,
        kind: "access",
        ...(record.incarnation !== undefined ? { incarnation: record.incarnation } : {}),
      });
    } catch (error) {
      if (!(error instanceof TokenDecryptError)) throw error;
      // An unreadable access token is replaced by the next refresh; the refresh token decides
      // whether the chain itself is broken.
      this.#deps.log.warn("stored access token does not decrypt", { connectionId: record.connectionId });
      return undefined;
    }
    // The vend is recorded unless a recent one keeps the chain hot (timing.ts needsHotMark), and
    // an idle chain is put back at its window.
    const markAtMs = this.#deps.now();
    const window = record.status === ChainStatus.Active ? record.windowOpensAtMs : undefined;
    const idle = window !== undefined && parkedPastWindow(record, window, markAtMs);
    const lifetimeMs = (record.accessExpiresAtMs ?? 0) - (record.accessIssuedAtMs ?? 0);
    if (idle || needsHotMark(record.lastVendAtMs, markAtMs, lifetimeMs)) {
      await this.#deps.store.unleased.markHot(record, idle ? window : undefined);
    }
    const expiresAtMs = record.accessExpiresAtMs ?? 0;
    const nowMs = this.#deps.now();
    if (expiresAtMs - nowMs < needMs) return undefined;
    const answer = answeredAt(
      {
        accessToken,
        tokenType: "Bearer",
        expiresAt: new Date(expiresAtMs).toISOString(),
        generation: record.generation,
        baseUrl: record.baseUrl,
        division: record.division ?? null,
        clientId: record.clientId,
      },
      nowMs,
    );
    this.#cache.put(record.connectionId, answer, expiresAtMs, record.incarnation, nowMs);
    return answer;
  }

  /**
   * The answer for a token this invocation just obtained (a refresh, a login, a check), if it has
   * `needMs` of validity: a chain that waited for its identity check may hold a token that does not.
   */
  fresh(record: ChainRecord, fresh: FreshAccess, needMs: number): VendAnswer | undefined {
    const nowMs = this.#deps.now();
    if (fresh.expiresAtMs - nowMs < needMs) return undefined;
    const answer = answeredAt(
      {
        accessToken: fresh.accessToken,
        tokenType: "Bearer",
        expiresAt: new Date(fresh.expiresAtMs).toISOString(),
        generation: fresh.generation,
        baseUrl: record.baseUrl,
        division: record.division ?? null,
        clientId: record.clientId,
      },
      nowMs,
    );
    this.#cache.put(record.connectionId, answer, fresh.expiresAtMs, record.incarnation, nowMs);
    return answer;
  }
}

/** A connection that has no chain to vend from: never seeded, waiting for an operator, or its user refused by Exact. */
export function refuseWithoutChain(record: ChainRecord, nowMs: number): void {
  const id = record.connectionId;
  // A blocked user's re-check by a login is still the block until its check says otherwise.
  const blockedBy = blockedReason(record);
  if (blockedBy !== undefined) {
    throw new UserBlocked(
      `connection "${id}": Exact refuses its user (${blockedBy}); no login can fix that; the broker checks again by itself`,
      { retryAfterSeconds: Math.max(1, Math.ceil(((record.dueAtMs ?? nowMs) - nowMs) / 1000)) },
    );
  }
  if (record.status === ChainStatus.New && record.mode === ConnectionMode.Code) {
    throw new ReauthRequired(
      `connection "${id}" was added but never connected to Exact; connect it: exact-broker connect --id ${id} (a consent link), or exact-broker connection seed --id ${id} --code <authorization code>`,
    );
  }
  if (record.status === ChainStatus.ReauthRequired) {
    throw new ReauthRequired(reauthMessage(id, record.status, record.statusReason ?? "unknown"));
  }
}
