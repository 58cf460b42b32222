import { ConnectionNotFound } from "../errors.js";
import { type ChainRecord, ChainStatus, ConnectionMode, LeasePurpose } from "./chain-record.js";
import { LeaseRefused } from "./chain-store.js";
import type { EngineDeps } from "./engine-deps.js";
import { type HistoryContext, HistoryDoor } from "./history-entry.js";
import { withIncarnation } from "./incarnation.js";
import { loginBlockedFor } from "./login-budget.js";
import { LoginProtocol } from "./login-protocol.js";
import { warnIfHigh } from "./token-call-cap.js";
import { PendingVerification } from "./verification.js";

export type HealResult =
  | { readonly kind: "healed"; readonly generation: number }
  /** A chain stored as VERIFYING passed its identity check (no login was needed). */
  | { readonly kind: "verified"; readonly generation: number }
  /** Nothing to do: healthy, already being healed, waiting for its backoff, or an operator's turn. */
  | {
      readonly kind: "skipped";
      readonly why: "healthy" | "busy" | "backoff" | "needs_operator" | "not_connected" | "blocked";
    }
  | { readonly kind: "failed"; readonly errorType: string; readonly message: string };

/**
 * The heal door: log in again and start a new chain for a BROKEN connection, under the same
 * lease as every other door. For an implicit-only connection it is also the normal path: the
 * login that gets its next access token. A chain stored as VERIFYING gets its identity check
 * instead of a login. Idempotent: a duplicate delivery finds the lease taken or the chain healed
 * and does nothing, so fallback-login can be invoked by every vend that sees the chain broken.
 */
export class HealDoor {
  readonly #deps: EngineDeps;
  readonly #login: LoginProtocol;
  readonly #verification: PendingVerification;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#login = new LoginProtocol(deps);
    this.#verification = new PendingVerification(deps);
  }

  /**
   * @param options.operator an operator asked (`exact-broker heal`): also heals a chain at
   *   REAUTH_REQUIRED (after the secret was fixed) or never connected, and forgets the failed
   *   logins that stopped it.
   * @param options.deadlineMs epoch ms by which this invocation must be done (the Lambda's remaining time)
   */
  async heal(
    connectionId: string,
    options: { readonly operator?: boolean; readonly deadlineMs?: number } = {},
  ): Promise<HealResult> {
    const { store, now, config, log } = this.#deps;
    // fallback-login is invoked by the engine itself; `exact-broker heal` is an operator's.
    const history: HistoryContext = {
      door: HistoryDoor.Heal,
      keepDays: config.historyDays,
      ...(options.operator ? { caller: "operator" } : {}),
    };
    let record = await this.#load(connectionId);
    const nowMs = now();
    if (store.leaseIsLive(record, nowMs)) return { kind: "skipped", why: "busy" };
    if (record.status === ChainStatus.Verifying) return this.#verify(record, options.deadlineMs, history);
    if (options.operator) {
      if (!(await store.unleased.resetForOperator(record))) return { kind: "skipped", why: "busy" };
      record = await this.#load(connectionId);
    } else {
      const why = skipReason(record, nowMs);
      if (why) return { kind: "skipped", why };
    }
    const outcome = await store.withLease(
      {
        record,
        owner: this.#deps.owner,
        purpose: LeasePurpose.Heal,
        leaseMs: config.leaseMs,
        history,
        ...(options.deadlineMs !== undefined ? { deadlineMs: options.deadlineMs } : {}),
      },
      async (session) => {
        // The item as it was at the acquire decides: it may have healed or moved on since our read.
        if (!options.operator && skipReason(session.record, now()) !== undefined) {
          return { kind: "superseded" } as const;
        }
        log.info("healing chain", {
          connectionId,
          reason: record.statusReason,
          generation: record.generation,
        });
        try {
          return await this.#login.run(
            session,
            record.mode === ConnectionMode.Implicit ? "implicit" : "heal",
            { vended: false, operator: options.operator ?? false },
          );
        } finally {
          // A heal's code exchange is a token call: after the writes that recorded it (token-call-cap.ts).
          await warnIfHigh(this.#deps, session);
        }
      },
    );
    if (outcome === LeaseRefused) return { kind: "skipped", why: "busy" };
    switch (outcome.kind) {
      case "logged_in":
        return { kind: "healed", generation: outcome.fresh.generation };
      case "superseded":
        return { kind: "skipped", why: "busy" };
      case "failed":
        return { kind: "failed", errorType: outcome.error.name, message: outcome.error.message };
    }
  }

  async #verify(
    record: ChainRecord,
    deadlineMs: number | undefined,
    history: HistoryContext,
  ): Promise<HealResult> {
    const outcome = await this.#verification.finish(record, {
      vended: false,
      ...(deadlineMs !== undefined ? { deadlineMs } : {}),
      history,
    });
    switch (outcome.kind) {
      case "verified":
        return { kind: "verified", generation: outcome.fresh.generation };
      case "failed":
        return { kind: "failed", errorType: outcome.error.name, message: outcome.error.message };
      case "wrong_user":
      case "duplicate":
        return { kind: "skipped", why: "needs_operator" };
      default:
        return { kind: "skipped", why: "busy" };
    }
  }

  async #load(connectionId: string): Promise<ChainRecord> {
    const read = await this.#deps.store.get(connectionId);
    const record = read && (await withIncarnation(this.#deps, read));
    if (!record) throw new ConnectionNotFound(`connection "${connectionId}" does not exist`);
    return record;
  }
}

/** Why an automatic heal leaves this chain alone, if it does. */
function skipReason(
  record: ChainRecord,
  nowMs: number,
): Exclude<HealResult, { kind: "healed" | "verified" | "failed" }>["why"] | undefined {
  const implicitDue = record.mode === ConnectionMode.Implicit && nowMs >= (record.windowOpensAtMs ?? 0);
  switch (record.status) {
    case ChainStatus.Active:
    case ChainStatus.Suspect:
      // An implicit chain's token is renewed by a login a window ahead of its expiry.
      if (!implicitDue) return "healthy";
      break;
    case ChainStatus.ReauthRequired:
      return "needs_operator";
    case ChainStatus.Blocked:
      // No login fixes what Exact refuses the user: while a chain is kept, the scheduled refresh
      // re-checks it with /current/Me. Without one (implicit mode, or Exact ended it) the
      // re-check is a login, once due (BLOCKED_LOGIN_RECHECK_MS); the connection stays BLOCKED.
      if (record.refreshCt !== undefined || nowMs < (record.dueAtMs ?? 0)) return "blocked";
      break;
    case ChainStatus.New:
      if (record.mode === ConnectionMode.Code) return "not_connected";
      break;
    default:
    // BROKEN, or HEALING with no live lease (the healer died): heal again.
  }
  return loginBlockedFor(record, nowMs) !== undefined ? "backoff" : undefined;
}
