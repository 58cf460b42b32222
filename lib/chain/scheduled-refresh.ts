import { LEASE_HEADROOM_MS } from "../config-timing.js";
import { BrokerError } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import {
  accessValidityMs,
  awaitsProbe,
  type ChainRecord,
  ChainStatus,
  ConnectionMode,
  LeasePurpose,
} from "./chain-record.js";
import { LeaseRefused } from "./chain-store.js";
import { announce, type EngineDeps, type HealTrigger } from "./engine-deps.js";
import { HealDoor } from "./heal-door.js";
import { InProcessHealTrigger } from "./heal-trigger.js";
import { type HistoryContext, HistoryDoor } from "./history-entry.js";
import { withIncarnation } from "./incarnation.js";
import { loginBlockedFor } from "./login-budget.js";
import { CLOCK_SKEW_BOUND_MS, keepaliveDueAtMs } from "./timing.js";
import { TokenProtocol } from "./token-protocol.js";
import { PendingVerification } from "./verification.js";

/** A refresh token this old means the keep-alive (at KEEPALIVE_DAYS) is failing; Exact expires it at 30 days. */
const EXPIRING_AFTER_MS = 27 * 86_400_000;

export interface RefreshRunOptions {
  /** Chains whose window opens within this horizon are refreshed by this run (default 60 s: one schedule tick). */
  readonly horizonMs?: number;
  /** Chains worked on at once (each may sleep until its window). */
  readonly concurrency?: number;
  /**
   * Epoch ms (injected clock) by which the run must be over: the Lambda's deadline. No chain's
   * work starts, and no sleep lasts, past what can finish before it; the rest waits for the next run.
   */
  readonly deadlineMs?: number;
}

export type ChainRunOutcome =
  | "refreshed"
  | "keepalive"
  | "verified"
  | "cooled"
  | "heal_triggered"
  | "deferred"
  | "skipped"
  | "failed";

export interface RefreshRunSummary {
  readonly due: number;
  readonly outcomes: Readonly<Record<ChainRunOutcome, number>>;
  /** errorType per failed connection. */
  readonly failures: ReadonlyArray<{ readonly connectionId: string; readonly errorType: string }>;
}

/**
 * The refresh door, driven by the schedule: advances hot chains inside their window so vends
 * rarely wait, refreshes idle chains before their refresh token reaches Exact's 30 days, and
 * finishes the identity check of chains stored as VERIFYING. Takes the same lease as a vend, so
 * it never races one; an overlapping run finds the lease taken or the generation moved.
 */
export class ScheduledRefresh {
  readonly #deps: EngineDeps;
  readonly #protocol: TokenProtocol;
  readonly #verification: PendingVerification;
  readonly #healTrigger: HealTrigger;
  /** The scheduler has no caller: its entries name only the door. */
  readonly #history: HistoryContext;

  constructor(deps: EngineDeps, options: { readonly healTrigger?: HealTrigger } = {}) {
    this.#deps = deps;
    this.#protocol = new TokenProtocol(deps);
    this.#verification = new PendingVerification(deps);
    this.#healTrigger = options.healTrigger ?? new InProcessHealTrigger(() => new HealDoor(deps), deps.log);
    this.#history = { door: HistoryDoor.Refresh, keepDays: deps.config.historyDays };
  }

  async run(options: RefreshRunOptions = {}): Promise<RefreshRunSummary> {
    const { now, store, log, config } = this.#deps;
    const startMs = now();
    const deadlineMs = options.deadlineMs ?? Number.POSITIVE_INFINITY;
    const horizonEndMs = Math.min(startMs + (options.horizonMs ?? 60_000), deadlineMs);
    const ids = await store.queryDue(horizonEndMs);
    const outcomes: Record<ChainRunOutcome, number> = {
      refreshed: 0,
      keepalive: 0,
      verified: 0,
      cooled: 0,
      heal_triggered: 0,
      deferred: 0,
      skipped: 0,
      failed: 0,
    };
    const failures: Array<{ connectionId: string; errorType: string }> = [];
    // A chain's work is one lease: it may start only if a whole lease's work can end before the deadline.
    const lastStartMs = deadlineMs - config.leaseMs - CLOCK_SKEW_BOUND_MS;
    const queue = [...ids];
    const worker = async (): Promise<void> => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        if (now() > lastStartMs) {
          outcomes.deferred += 1;
          continue;
        }
        try {
          outcomes[await this.#one(id, horizonEndMs, lastStartMs, deadlineMs)] += 1;
        } catch (error) {
          outcomes.failed += 1;
          const errorType = error instanceof BrokerError ? error.name : "InternalError";
          failures.push({ connectionId: id, errorType });
          log.warn("scheduled refresh failed", { connectionId: id, errorType });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker));
    log.info("scheduled refresh run finished", { due: ids.length, ...outcomes });
    return { due: ids.length, outcomes, failures };
  }

  async #one(
    connectionId: string,
    horizonEndMs: number,
    lastStartMs: number,
    deadlineMs: number,
  ): Promise<ChainRunOutcome> {
    const { store, now, sleep, config } = this.#deps;
    const read = await store.get(connectionId);
    const record = read && (await withIncarnation(this.#deps, read));
    if (!record) return "skipped";
    const nowMs = now();
    if (store.leaseIsLive(record, nowMs) || record.incarnation === undefined) return "skipped";
    if ((record.backoffUntilMs ?? 0) > nowMs && record.status !== ChainStatus.Broken) return "skipped";
    if (record.status === ChainStatus.Verifying) return this.#verify(record, deadlineMs);
    if (record.status === ChainStatus.Blocked) {
      // Exact still refreshes a blocked user's chain: keep it alive; otherwise this is its re-check
      // (a login's, when there is no chain to keep).
      const keepaliveDue =
        keepaliveDueAtMs(record.refreshIssuedAtMs ?? record.createdAtMs, config.keepaliveDays) <= nowMs;
      if (!keepaliveDue || !record.refreshCt) return this.#verify(record, deadlineMs);
    }
    if (record.status === ChainStatus.Broken || record.status === ChainStatus.Healing) {
      if (loginBlockedFor(record, nowMs) !== undefined) return "skipped";
      this.#healTrigger.trigger(connectionId);
      return "heal_triggered";
    }
    const refreshable: readonly ChainStatus[] = [
      ChainStatus.Active,
      ChainStatus.Suspect,
      ChainStatus.Blocked,
    ];
    if (!refreshable.includes(record.status)) return "skipped";

    const implicit = record.mode === ConnectionMode.Implicit;
    const lifetimeMs = (record.accessExpiresAtMs ?? 0) - (record.accessIssuedAtMs ?? 0);
    const hot = record.lastVendAtMs !== undefined && record.lastVendAtMs >= nowMs - lifetimeMs;
    const refreshIssuedAtMs = record.refreshIssuedAtMs ?? record.createdAtMs;
    const keepaliveAtMs = keepaliveDueAtMs(refreshIssuedAtMs, config.keepaliveDays);
    const keepalive = !implicit && keepaliveAtMs <= nowMs;
    if (!implicit && nowMs - refreshIssuedAtMs >= EXPIRING_AFTER_MS) {
      await announce(this.#deps, BrokerEventType.RefreshTokenExpiring, record, EventReason.KeepaliveFailing);
    }
    if (!hot && !keepalive) {
      // Vended once, idle since: leave it alone until its keep-alive date. An idle implicit
      // chain has no refresh token to keep alive: its next vend logs in.
      await store.unleased.cool(record, implicit ? undefined : keepaliveAtMs);
      return "cooled";
    }
    const windowAtMs = record.windowOpensAtMs ?? 0;
    // Sleep for a window only if its work can still end before the deadline.
    if (windowAtMs > Math.min(horizonEndMs, lastStartMs)) return "skipped";
    if (implicit) {
      // Log in ahead of expiry, in fallback-login, so vends rarely wait for a login.
      if (loginBlockedFor(record, nowMs) !== undefined) return "skipped";
      await sleep(windowAtMs - nowMs);
      this.#healTrigger.trigger(connectionId);
      return "heal_triggered";
    }
    if (windowAtMs > nowMs) await sleep(windowAtMs - nowMs);
    const result = await store.withLease(
      {
        record,
        owner: this.#deps.owner,
        purpose: awaitsProbe(record) ? LeasePurpose.Probe : LeasePurpose.Refresh,
        leaseMs: config.leaseMs,
        deadlineMs: deadlineMs - LEASE_HEADROOM_MS,
        history: this.#history,
      },
      (session) => this.#protocol.refresh(session, { vended: false }),
    );
    // Taken or advanced meanwhile (a vend, an overlapping run): that chain is looked after.
    if (result === LeaseRefused || result.kind === "superseded") return "skipped";
    if (result.kind === "failed") {
      // A chain whose token is still valid keeps serving it; the failure is already recorded.
      if (accessValidityMs(record, now()) > 0 && result.error.retryable) return "skipped";
      throw result.error;
    }
    if (result.kind === "broken") {
      this.#healTrigger.trigger(connectionId);
      return "heal_triggered";
    }
    return hot ? "refreshed" : "keepalive";
  }

  async #verify(record: ChainRecord, deadlineMs: number): Promise<ChainRunOutcome> {
    const history = this.#history;
    let outcome = await this.#verification.finish(record, { vended: false, deadlineMs, history });
    if (outcome.kind === "refreshed" && outcome.result.kind === "refreshed") {
      // Its token had expired while it waited: with the fresh one, check now rather than next run.
      const fresh = await this.#deps.store.get(record.connectionId);
      if (fresh && this.#deps.now() < deadlineMs - this.#deps.config.leaseMs) {
        outcome = await this.#verification.finish(fresh, { vended: false, deadlineMs, history });
      }
    }
    switch (outcome.kind) {
      case "verified":
        return "verified";
      case "refreshed":
        return "keepalive";
      case "needs_login": {
        // A blocked user without a chain: its re-check is a login, in fallback-login, once due.
        const nowMs = this.#deps.now();
        if ((record.dueAtMs ?? 0) > nowMs || loginBlockedFor(record, nowMs) !== undefined) return "skipped";
        this.#healTrigger.trigger(record.connectionId);
        return "heal_triggered";
      }
      case "failed":
        throw outcome.error;
      default:
        return "skipped";
    }
  }
}
