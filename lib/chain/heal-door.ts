import { ConnectionNotFound } from "../errors.js";
import { EventReason } from "../events/broker-events.js";
import { ChainStatus, LeasePurpose, leaseIsLive } from "./chain-record.js";
import { isLeaseRefused } from "./chain-store.js";
import type { EngineDeps } from "./engine-deps.js";
import { LoginProtocol, loginBlockedFor } from "./login-protocol.js";

export type HealResult =
  | { readonly kind: "healed"; readonly generation: number }
  /** Nothing to do: healthy, already being healed, waiting for its backoff, or an operator's turn. */
  | {
      readonly kind: "skipped";
      readonly why: "healthy" | "busy" | "backoff" | "needs_operator" | "not_connected";
    }
  | { readonly kind: "failed"; readonly errorType: string; readonly message: string };

/**
 * The heal door: log in again and start a new chain for a BROKEN connection, under the same
 * lease as every other door. For an implicit-only connection it is also the normal path: the
 * login that gets its next access token. Idempotent: a duplicate delivery finds the lease taken or the
 * chain healed and does nothing, so fallback-login can be invoked by every vend that sees the
 * chain broken.
 */
export class HealDoor {
  readonly #deps: EngineDeps;
  readonly #login: LoginProtocol;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#login = new LoginProtocol(deps);
  }

  /**
   * @param options.operator an operator asked (`exact-broker heal`): also heals a chain at
   *   REAUTH_REQUIRED (after the secret was fixed) or never connected, and forgets the failed
   *   logins that stopped it.
   */
  async heal(connectionId: string, options: { readonly operator?: boolean } = {}): Promise<HealResult> {
    const { store, now, config, log } = this.#deps;
    let record = await store.get(connectionId);
    if (!record) throw new ConnectionNotFound(`connection "${connectionId}" does not exist`);
    const nowMs = now();
    if (leaseIsLive(record, nowMs)) return { kind: "skipped", why: "busy" };
    if (options.operator) {
      const cleared = await store.updateAtGeneration(connectionId, record.generation, {
        set: { status: ChainStatus.Broken, statusReason: EventReason.Operator, statusChangedAtMs: nowMs },
        remove: ["loginFailures", "lastLoginFailure", "backoffUntilMs", "backoffReason", "failureStreak"],
      });
      if (!cleared) return { kind: "skipped", why: "busy" };
      record = await store.get(connectionId);
      if (!record) throw new ConnectionNotFound(`connection "${connectionId}" does not exist`);
    } else {
      const implicitDue = record.mode === "implicit" && nowMs >= (record.windowOpensAtMs ?? 0);
      switch (record.status) {
        case ChainStatus.Active:
        case ChainStatus.Suspect:
          // An implicit chain's token is renewed by a login a window ahead of its expiry.
          if (!implicitDue) return { kind: "skipped", why: "healthy" };
          break;
        case ChainStatus.Healing:
          // The lease is not live (checked above): the healer died; heal again.
          break;
        case ChainStatus.ReauthRequired:
          return { kind: "skipped", why: "needs_operator" };
        case ChainStatus.New:
          if (record.mode === "code") return { kind: "skipped", why: "not_connected" };
          break;
        default:
      }
      if (loginBlockedFor(record, nowMs) !== undefined) return { kind: "skipped", why: "backoff" };
    }

    const lease = await store.acquireLease({
      connectionId,
      owner: this.#deps.owner,
      purpose: LeasePurpose.Heal,
      seenGeneration: record.generation,
      nowMs: now(),
      leaseMs: config.leaseMs,
    });
    if (isLeaseRefused(lease)) return { kind: "skipped", why: "busy" };
    log.info("healing chain", { connectionId, reason: record.statusReason, generation: record.generation });
    const outcome = await this.#login.run(lease, record.mode === "implicit" ? "implicit" : "heal", {
      vended: false,
    });
    switch (outcome.kind) {
      case "logged_in":
        return { kind: "healed", generation: outcome.fresh.generation };
      case "superseded":
        return { kind: "skipped", why: "busy" };
      case "failed":
        return { kind: "failed", errorType: outcome.error.name, message: outcome.error.message };
    }
  }
}
