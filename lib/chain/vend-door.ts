import {
  type BrokerError,
  ChainBusy,
  ConnectionNotFound,
  ExactUnavailable,
  ReauthRequired,
  Throttled,
  TokenDecryptError,
} from "../errors.js";
import {
  accessValidityMs,
  type ChainRecord,
  ChainStatus,
  ConnectionMode,
  LeasePurpose,
  leaseIsLive,
} from "./chain-record.js";
import { isLeaseRefused } from "./chain-store.js";
import type { EngineDeps, HealTrigger } from "./engine-deps.js";
import { HealDoor } from "./heal-door.js";
import { InProcessHealTrigger } from "./heal-trigger.js";
import { loginBlockedFor } from "./login-protocol.js";
import { ChainTable } from "./table-definition.js";
import { TokenCache, type VendAnswer } from "./token-cache.js";
import { type FreshAccess, reauthMessage, TokenProtocol } from "./token-protocol.js";

export interface VendDoorOptions {
  readonly cache?: TokenCache;
  /** Let concurrent vends of one connection in this process share one slow path (default true). */
  readonly coalesce?: boolean;
  /** How long a vend waits for another holder's generation before ChainBusy (default lease + 5 s). */
  readonly waitMs?: number;
  /** Starts the heal of a chain found BROKEN (the vend then waits for the new generation). */
  readonly healTrigger?: HealTrigger;
}

/** One attempt of the slow path: an answer, a failure to report, or go round again. */
type Step =
  | { readonly kind: "answer"; readonly answer: VendAnswer }
  | { readonly kind: "failed"; readonly error: BrokerError }
  | { readonly kind: "again"; readonly pause: boolean };

const FIRST_POLL_MS = 25;
const MAX_POLL_MS = 400;

/**
 * The vend door: a valid access token, refreshing the chain if it must.
 *
 * Waiters wait for the generation, not the lease: while someone else holds the lease they
 * re-read (strongly consistent, jittered backoff) until a newer generation lands, the lease
 * frees, or the deadline passes. A current token that still has the requested validity is
 * returned at once, whatever else is going on.
 */
export class VendDoor {
  readonly #deps: EngineDeps;
  readonly #protocol: TokenProtocol;
  readonly #cache: TokenCache;
  readonly #coalesce: boolean;
  readonly #waitMs: number;
  readonly #inflight = new Map<string, Promise<unknown>>();
  readonly #healTrigger: HealTrigger;
  #leaseWaits = 0;

  constructor(deps: EngineDeps, options: VendDoorOptions = {}) {
    this.#deps = deps;
    this.#protocol = new TokenProtocol(deps);
    this.#cache = options.cache ?? new TokenCache();
    this.#coalesce = options.coalesce ?? true;
    this.#waitMs = options.waitMs ?? deps.config.leaseMs + 5_000;
    this.#healTrigger = options.healTrigger ?? new InProcessHealTrigger(() => new HealDoor(deps), deps.log);
  }

  /**
   * Vends so far that had to wait for another invocation's work (a refresh, a login). token-vend
   * reports the increase per invocation as the LeaseWaits metric.
   */
  get leaseWaits(): number {
    return this.#leaseWaits;
  }

  /** Forgets a cached token (a consumer got a 401 with it). */
  invalidate(connectionId: string): void {
    this.#cache.delete(connectionId);
  }

  async vend(connectionId: string, minValiditySeconds: number): Promise<VendAnswer> {
    const minValidityMs = minValiditySeconds * 1000;
    for (;;) {
      const cached = this.#cache.get(connectionId, minValidityMs, this.#deps.now());
      if (cached) return cached;
      const running = this.#coalesce ? this.#inflight.get(connectionId) : undefined;
      if (!running) break;
      await running.catch(() => undefined);
    }
    const slow = this.#slowPath(connectionId, minValidityMs);
    if (!this.#coalesce) return slow;
    this.#inflight.set(connectionId, slow);
    try {
      return await slow;
    } finally {
      if (this.#inflight.get(connectionId) === slow) this.#inflight.delete(connectionId);
    }
  }

  async #slowPath(connectionId: string, minValidityMs: number): Promise<VendAnswer> {
    const { store, now, sleep } = this.#deps;
    const deadlineMs = now() + this.#waitMs;
    let pollMs = FIRST_POLL_MS;
    let healTriggered = false;
    let waited = false;
    /** Waits for someone else's work (a refresh, a heal), or gives up with ChainBusy at the deadline. */
    const waitOrGiveUp = async (record: ChainRecord, what: string): Promise<void> => {
      if (!waited) {
        waited = true;
        this.#leaseWaits += 1;
      }
      const nowMs = now();
      if (nowMs >= deadlineMs) {
        const untilMs =
          record.leaseUntilMs !== undefined && record.leaseUntilMs > nowMs
            ? record.leaseUntilMs
            : nowMs + 5_000;
        throw new ChainBusy(`connection "${connectionId}" is being ${what} by another invocation`, {
          retryAfterSeconds: Math.max(1, Math.ceil((untilMs - nowMs) / 1000)),
        });
      }
      await sleep(Math.round(pollMs * (0.5 + this.#deps.random())));
      pollMs = Math.min(MAX_POLL_MS, pollMs * 2);
    };

    for (;;) {
      const record = await store.get(connectionId);
      if (!record) {
        throw new ConnectionNotFound(
          `connection "${connectionId}" does not exist; add it with: exact-broker connection add --id ${connectionId} …`,
        );
      }
      this.#refuseWithoutChain(record);
      const nowMs = now();
      const validityMs = accessValidityMs(record, nowMs);

      // A token that is still good is served whatever state the chain is in.
      if (validityMs >= minValidityMs) {
        const answer = await this.#answer(record);
        if (answer) return answer;
      }
      if (leaseIsLive(record, nowMs)) {
        await waitOrGiveUp(record, record.status === ChainStatus.Healing ? "healed" : "refreshed");
        continue;
      }
      // Implicit chains get every token from a login; like a heal, it runs in fallback-login.
      const needsLogin = record.mode === ConnectionMode.Implicit;
      if (needsLogin || record.status === ChainStatus.Broken || record.status === ChainStatus.Healing) {
        const blockedFor = loginBlockedFor(record, nowMs);
        if (blockedFor !== undefined) {
          return this.#degraded(
            record,
            new ChainBusy(`connection "${connectionId}": the next login is in ${blockedFor} s`, {
              retryAfterSeconds: blockedFor,
            }),
          );
        }
        if (!healTriggered) {
          this.#healTrigger.trigger(connectionId);
          healTriggered = true;
        }
        await waitOrGiveUp(record, needsLogin ? "logged in" : "healed");
        continue;
      }
      if ((record.backoffUntilMs ?? 0) > nowMs) {
        return this.#degraded(record, this.#backoffError(record, nowMs));
      }
      const step = await this.#refreshInWindow(record, deadlineMs);
      switch (step.kind) {
        case "answer":
          return step.answer;
        case "failed":
          return this.#degraded(record, step.error);
        case "again":
          if (step.pause) await waitOrGiveUp(record, "refreshed");
      }
    }
  }

  /** Code mode: wait for Exact's window if it opens in a moment, then refresh under the lease. */
  async #refreshInWindow(record: ChainRecord, deadlineMs: number): Promise<Step> {
    const { store, now, sleep, config } = this.#deps;
    const nowMs = now();
    const windowMs = (record.windowOpensAtMs ?? 0) - nowMs;
    if (windowMs > 0) {
      // Exact would refuse a refresh now. The window opens at most REFRESH_MARGIN_MS after the
      // token falls below the largest validity a caller may ask for, so this is short.
      if (nowMs + windowMs > deadlineMs) {
        return {
          kind: "failed",
          error: new Throttled(`connection "${record.connectionId}" cannot be refreshed yet`, {
            retryAfterSeconds: Math.ceil(windowMs / 1000),
          }),
        };
      }
      await sleep(windowMs);
      return { kind: "again", pause: false };
    }
    const lease = await store.acquireLease({
      connectionId: record.connectionId,
      owner: this.#deps.owner,
      purpose: record.status === ChainStatus.Suspect ? LeasePurpose.Probe : LeasePurpose.Refresh,
      seenGeneration: record.generation,
      nowMs,
      leaseMs: config.leaseMs,
    });
    if (isLeaseRefused(lease)) return { kind: "again", pause: true };
    const result = await this.#protocol.refresh(lease, { vended: true });
    switch (result.kind) {
      case "failed":
        return { kind: "failed", error: result.error };
      case "refreshed":
        return result.fresh
          ? { kind: "answer", answer: this.#fresh(record, result.fresh) }
          : { kind: "again", pause: false };
      default:
        // Superseded, or broken now: the next read shows which (and a broken chain gets healed).
        return { kind: "again", pause: false };
    }
  }

  #fresh(record: ChainRecord, fresh: FreshAccess): VendAnswer {
    const answer: VendAnswer = {
      accessToken: fresh.accessToken,
      tokenType: "Bearer",
      expiresAt: new Date(fresh.expiresAtMs).toISOString(),
      generation: fresh.generation,
      baseUrl: record.baseUrl,
      division: record.division ?? null,
    };
    this.#cache.put(record.connectionId, answer, fresh.expiresAtMs);
    return answer;
  }

  #refuseWithoutChain(record: ChainRecord): void {
    const id = record.connectionId;
    if (record.status === ChainStatus.New && record.mode === ConnectionMode.Code) {
      throw new ReauthRequired(
        `connection "${id}" was added but never connected to Exact; connect it: exact-broker connect --id ${id} (a consent link), or exact-broker connection seed --id ${id} --code <authorization code>`,
      );
    }
    if (record.status === ChainStatus.ReauthRequired) {
      throw new ReauthRequired(reauthMessage(id, record.status, record.statusReason ?? "unknown"));
    }
  }

  /**
   * Decrypts and returns the item's current token, and records that the chain is hot: at most
   * one write per generation (later vends see hotGeneration and write nothing).
   */
  async #answer(record: ChainRecord): Promise<VendAnswer | undefined> {
    let accessToken: string;
    try {
      accessToken = await this.#deps.cipher.decrypt(record.accessCt ?? "", {
        connectionId: record.connectionId,
        kind: "access",
      });
    } catch (error) {
      if (!(error instanceof TokenDecryptError)) throw error;
      // An unreadable access token is replaced by the next refresh; the refresh token decides
      // whether the chain itself is broken.
      this.#deps.log.warn("stored access token does not decrypt", { connectionId: record.connectionId });
      return undefined;
    }
    if (record.hotGeneration !== record.generation) {
      await this.#deps.store.updateAtGeneration(record.connectionId, record.generation, {
        set: {
          lastVendAtMs: this.#deps.now(),
          hotGeneration: record.generation,
          ...(record.status === ChainStatus.Active && record.windowOpensAtMs
            ? { dueShard: ChainTable.dueShardValue, dueAtMs: record.windowOpensAtMs }
            : {}),
        },
      });
    }
    const expiresAtMs = record.accessExpiresAtMs ?? 0;
    const answer: VendAnswer = {
      accessToken,
      tokenType: "Bearer",
      expiresAt: new Date(expiresAtMs).toISOString(),
      generation: record.generation,
      baseUrl: record.baseUrl,
      division: record.division ?? null,
    };
    this.#cache.put(record.connectionId, answer, expiresAtMs);
    return answer;
  }

  /** A chain that cannot be refreshed right now still serves its current token while it is valid. */
  async #degraded(record: ChainRecord, error: BrokerError): Promise<VendAnswer> {
    if (!(error instanceof ReauthRequired) && accessValidityMs(record, this.#deps.now()) > 0) {
      const answer = await this.#answer(record);
      if (answer) return answer;
    }
    throw error;
  }

  #backoffError(record: ChainRecord, nowMs: number): BrokerError {
    const retryAfterSeconds = Math.max(1, Math.ceil(((record.backoffUntilMs ?? nowMs) - nowMs) / 1000));
    const message = `connection "${record.connectionId}" is backing off after Exact refused or failed a refresh`;
    return record.backoffReason === "throttled"
      ? new Throttled(message, { retryAfterSeconds })
      : new ExactUnavailable(message, { retryAfterSeconds });
  }
}
