import { LEASE_HEADROOM_MS } from "../config-timing.js";
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
import type { HistoryContext } from "./history-entry.js";
import { withIncarnation } from "./incarnation.js";
import { loginBlockedFor } from "./login-budget.js";
import { hotAt, keepaliveDueAtMs } from "./timing.js";
import { TokenProtocol } from "./token-protocol.js";
import { PendingVerification } from "./verification.js";

/**
 * Token calls one chain's work makes at most in one run: the first, and one retry after an answer
 * that only asked to wait (too early, throttled, not processed) while the window is open. One:
 * each too-early answer counts toward Exact's error limit (../shared/exact-online.md).
 */
const IN_RUN_ATTEMPTS = 2;

/** A refused refresh to try again in this run, at this epoch ms (the engine's clock). */
interface RetryInRun {
  readonly retryAtMs: number;
}

/** A refresh token this old means the keep-alive (at KEEPALIVE_DAYS) is failing; Exact expires it at 30 days. */
const EXPIRING_AFTER_MS = 27 * 86_400_000;

export type ChainRunOutcome =
  | "refreshed"
  | "keepalive"
  | "verified"
  | "cooled"
  | "heal_triggered"
  | "deferred"
  | "skipped"
  | "failed";

/** Every outcome at 0: a run's tally. */
export function noOutcomes(): Record<ChainRunOutcome, number> {
  return {
    refreshed: 0,
    keepalive: 0,
    verified: 0,
    cooled: 0,
    heal_triggered: 0,
    deferred: 0,
    skipped: 0,
    failed: 0,
  };
}

/** Epoch ms (the engine's clock) that bound one chain's work. */
export interface DueChainWindow {
  /** A refresh window opening later than this is left for later work (no sleep that long). */
  readonly horizonEndMs: number;
  /** No lease starts after this: a whole lease's work must end before the deadline. */
  readonly lastStartMs: number;
  /** The Lambda's deadline (or the run's). */
  readonly deadlineMs: number;
  /**
   * How the dispatcher queued this work (refresh-dispatch.ts): if it claimed the chain, the due
   * time it found stands in for the item's while the item still carries the claim's re-dispatch time.
   */
  readonly dispatched?: DispatchClaim;
}

/**
 * How the dispatcher found a due chain: due at `dueAtMs`; if it was overdue, claimed too, moved
 * to `redispatchAtMs`.
 */
export interface DispatchClaim {
  readonly dueAtMs: number;
  readonly redispatchAtMs?: number;
}

/** The record as the work decides on it: a claim's re-dispatch time is not the chain's own due time. */
function withDispatchedDueAt(record: ChainRecord, claim: DispatchClaim | undefined): ChainRecord {
  if (claim?.redispatchAtMs === undefined || record.dueAtMs !== claim.redispatchAtMs) return record;
  return { ...record, dueAtMs: claim.dueAtMs };
}

/**
 * One due chain's proactive work, shared by the in-process scheduled refresh (scheduled-refresh.ts)
 * and the queue's worker (refresh-worker.ts). It takes the same lease as a vend, so it never
 * races one; work that finds the lease taken or the generation moved leaves the chain to it.
 */
export class DueChainWork {
  readonly #deps: EngineDeps;
  readonly #protocol: TokenProtocol;
  readonly #verification: PendingVerification;
  readonly #healTrigger: HealTrigger;
  /** Proactive work has no caller: its entries name only the door. */
  readonly #history: HistoryContext;

  constructor(deps: EngineDeps, healTrigger: HealTrigger, history: HistoryContext) {
    this.#deps = deps;
    this.#protocol = new TokenProtocol(deps);
    this.#verification = new PendingVerification(deps);
    this.#healTrigger = healTrigger;
    this.#history = history;
  }

  /**
   * Does what one chain is due for, under its lease: a refresh in its window (sleeping for it when
   * the window opens before `horizonEndMs`), a keep-alive, an identity check, a heal's trigger, or
   * cooling an idle chain. Never starts a lease after `lastStartMs`.
   *
   * @throws BrokerError when the chain's work failed and its token is no longer valid (the
   *   failure is already recorded on the chain)
   */
  async run(connectionId: string, window: DueChainWindow): Promise<ChainRunOutcome> {
    const { now, sleep } = this.#deps;
    for (let attempt = 1; ; attempt += 1) {
      const step = await this.#runOnce(connectionId, window);
      if (typeof step === "string") return step;
      // Exact only asked to wait (too early by its clock, throttled, not processed): the next
      // tick is a minute away and the window 29 s long, so try again here while the run's
      // horizon and the lease's last start allow. The retry re-reads the chain and takes a new
      // lease: whatever happened meanwhile decides.
      if (attempt >= IN_RUN_ATTEMPTS || step.retryAtMs > Math.min(window.horizonEndMs, window.lastStartMs)) {
        return "skipped";
      }
      // A timer may wake a little early, and the chain's backoff ends at retryAtMs exactly.
      while (now() < step.retryAtMs) await sleep(step.retryAtMs - now() + 1);
    }
  }

  async #runOnce(connectionId: string, window: DueChainWindow): Promise<ChainRunOutcome | RetryInRun> {
    const { horizonEndMs, lastStartMs, deadlineMs } = window;
    const { store, now, sleep, config } = this.#deps;
    const read = await store.get(connectionId);
    const found = read && (await withIncarnation(this.#deps, read));
    if (!found) return "skipped";
    const record = withDispatchedDueAt(found, window.dispatched);
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
    // Judged when its work fell due, at its window at the latest: work that comes late (a lost
    // message found again, a worker that died, a claim's re-dispatch time queued in its turn)
    // still refreshes a chain that was hot then.
    const judgedAtMs = Math.min(nowMs, record.dueAtMs ?? nowMs, record.windowOpensAtMs ?? nowMs);
    const hot = hotAt(record.lastVendAtMs, judgedAtMs, lifetimeMs);
    const refreshIssuedAtMs = record.refreshIssuedAtMs ?? record.createdAtMs;
    const keepaliveAtMs = keepaliveDueAtMs(refreshIssuedAtMs, config.keepaliveDays);
    const keepalive = !implicit && keepaliveAtMs <= nowMs;
    if (!implicit && nowMs - refreshIssuedAtMs >= EXPIRING_AFTER_MS) {
      await announce(this.#deps, BrokerEventType.RefreshTokenExpiring, record, EventReason.KeepaliveFailing);
    }
    if (!hot && !keepalive) {
      // Vended once, idle since: leave it alone until its keep-alive date. An idle implicit
      // chain has no refresh token to keep alive: its next vend logs in.
      // Refused when a lease or a vend moved the chain since it was read: that one decides.
      return (await store.unleased.cool(record, implicit ? undefined : keepaliveAtMs)) ? "cooled" : "skipped";
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
      if (accessValidityMs(record, now()) > 0 && result.error.retryable) {
        const { retryAtMs } = result;
        const worthIt = hot && retryAtMs !== undefined && accessValidityMs(record, retryAtMs) > 0;
        return worthIt ? { retryAtMs } : "skipped";
      }
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
