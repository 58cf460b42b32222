import { BrokerError } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import { accessValidityMs, ChainStatus, ConnectionMode, LeasePurpose, leaseIsLive } from "./chain-record.js";
import { isLeaseRefused } from "./chain-store.js";
import type { EngineDeps, HealTrigger } from "./engine-deps.js";
import { HealDoor } from "./heal-door.js";
import { InProcessHealTrigger } from "./heal-trigger.js";
import { loginBlockedFor } from "./login-protocol.js";
import { keepaliveDueAtMs } from "./timing.js";
import { TokenProtocol } from "./token-protocol.js";

/** A refresh token this old means the keep-alive (at KEEPALIVE_DAYS) is failing; Exact expires it at 30 days. */
const EXPIRING_AFTER_MS = 27 * 86_400_000;

export interface RefreshRunOptions {
  /** Chains whose window opens within this horizon are refreshed by this run (default 60 s: one schedule tick). */
  readonly horizonMs?: number;
  /** Chains worked on at once (each may sleep until its window). */
  readonly concurrency?: number;
}

export type ChainRunOutcome = "refreshed" | "keepalive" | "cooled" | "heal_triggered" | "skipped" | "failed";

export interface RefreshRunSummary {
  readonly due: number;
  readonly outcomes: Readonly<Record<ChainRunOutcome, number>>;
  /** errorType per failed connection. */
  readonly failures: ReadonlyArray<{ readonly connectionId: string; readonly errorType: string }>;
}

/**
 * The refresh door, driven by the schedule: advances hot chains inside their window so vends
 * rarely wait, and refreshes idle chains before their refresh token reaches Exact's 30 days.
 * Takes the same lease as a vend, so it never races one; an overlapping run finds the lease
 * taken or the generation moved and skips the chain.
 */
export class ScheduledRefresh {
  readonly #deps: EngineDeps;
  readonly #protocol: TokenProtocol;
  readonly #healTrigger: HealTrigger;

  constructor(deps: EngineDeps, options: { readonly healTrigger?: HealTrigger } = {}) {
    this.#deps = deps;
    this.#protocol = new TokenProtocol(deps);
    this.#healTrigger = options.healTrigger ?? new InProcessHealTrigger(() => new HealDoor(deps), deps.log);
  }

  async run(options: RefreshRunOptions = {}): Promise<RefreshRunSummary> {
    const horizonMs = options.horizonMs ?? 60_000;
    const startMs = this.#deps.now();
    const ids = await this.#deps.store.queryDue(startMs + horizonMs);
    const outcomes: Record<ChainRunOutcome, number> = {
      refreshed: 0,
      keepalive: 0,
      cooled: 0,
      heal_triggered: 0,
      skipped: 0,
      failed: 0,
    };
    const failures: Array<{ connectionId: string; errorType: string }> = [];
    const queue = [...ids];
    const worker = async (): Promise<void> => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        try {
          outcomes[await this.#one(id, startMs + horizonMs)] += 1;
        } catch (error) {
          outcomes.failed += 1;
          const errorType = error instanceof BrokerError ? error.name : "InternalError";
          failures.push({ connectionId: id, errorType });
          this.#deps.log.warn("scheduled refresh failed", { connectionId: id, errorType });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker));
    this.#deps.log.info("scheduled refresh run finished", { due: ids.length, ...outcomes });
    return { due: ids.length, outcomes, failures };
  }

  async #one(connectionId: string, horizonEndMs: number): Promise<ChainRunOutcome> {
    const { store, now, sleep, config } = this.#deps;
    const record = await store.get(connectionId);
    if (!record) return "skipped";
    const nowMs = now();
    if (leaseIsLive(record, nowMs)) return "skipped";
    if (record.status === ChainStatus.Broken || record.status === ChainStatus.Healing) {
      if (loginBlockedFor(record, nowMs) !== undefined) return "skipped";
      this.#healTrigger.trigger(connectionId);
      return "heal_triggered";
    }
    if (record.status !== ChainStatus.Active && record.status !== ChainStatus.Suspect) return "skipped";

    const implicit = record.mode === ConnectionMode.Implicit;
    const lifetimeMs = (record.accessExpiresAtMs ?? 0) - (record.accessIssuedAtMs ?? 0);
    const hot = record.lastVendAtMs !== undefined && record.lastVendAtMs >= nowMs - lifetimeMs;
    const refreshIssuedAtMs = record.refreshIssuedAtMs ?? record.createdAtMs;
    const keepaliveAtMs = keepaliveDueAtMs(refreshIssuedAtMs, config.keepaliveDays);
    const keepalive = !implicit && keepaliveAtMs <= nowMs;
    if (!implicit && nowMs - refreshIssuedAtMs >= EXPIRING_AFTER_MS) {
      await this.#deps.events.publish({
        type: BrokerEventType.RefreshTokenExpiring,
        detail: {
          connectionId,
          generation: record.generation,
          reason: EventReason.KeepaliveFailing,
          at: new Date(nowMs).toISOString(),
        },
      });
    }

    if (!hot && !keepalive) {
      // Vended once, idle since: leave it alone until its keep-alive date. An idle implicit
      // chain has no refresh token to keep alive: its next vend logs in.
      await store.updateAtGeneration(
        connectionId,
        record.generation,
        implicit ? { remove: ["dueShard", "dueAtMs"] } : { set: { dueAtMs: keepaliveAtMs } },
      );
      return "cooled";
    }
    if ((record.backoffUntilMs ?? 0) > nowMs) return "skipped";
    const windowAtMs = record.windowOpensAtMs ?? 0;
    if (implicit) {
      // Log in ahead of expiry, in fallback-login, so vends rarely wait for a login.
      if (windowAtMs > horizonEndMs || loginBlockedFor(record, nowMs) !== undefined) return "skipped";
      await sleep(windowAtMs - nowMs);
      this.#healTrigger.trigger(connectionId);
      return "heal_triggered";
    }
    if (windowAtMs > nowMs) {
      if (windowAtMs > horizonEndMs) return "skipped";
      await sleep(windowAtMs - nowMs);
    }
    const lease = await store.acquireLease({
      connectionId,
      owner: this.#deps.owner,
      purpose: record.status === ChainStatus.Suspect ? LeasePurpose.Probe : LeasePurpose.Refresh,
      seenGeneration: record.generation,
      nowMs: now(),
      leaseMs: config.leaseMs,
    });
    // Taken or advanced meanwhile (a vend, an overlapping run): that chain is looked after.
    if (isLeaseRefused(lease)) return "skipped";
    const result = await this.#protocol.refresh(lease, { vended: false });
    if (result.kind === "failed") {
      // A hot chain whose token is still valid keeps serving it; the failure is already recorded.
      if (accessValidityMs(record, now()) > 0 && result.error.retryable) return "skipped";
      throw result.error;
    }
    if (result.kind === "broken") {
      this.#healTrigger.trigger(connectionId);
      return "heal_triggered";
    }
    if (result.kind === "superseded") return "skipped";
    return hot ? "refreshed" : "keepalive";
  }
}
