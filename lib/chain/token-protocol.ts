import { createHash } from "node:crypto";
import {
  type BrokerError,
  ExactUnavailable,
  ReauthRequired,
  SecretUnavailable,
  Throttled,
  TokenDecryptError,
} from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import { checkBaseUrl } from "../exact/base-url.js";
import {
  countsAsExactError,
  DeadReason,
  type IssuedTokens,
  type TokenOutcome,
} from "../exact/classify-token-response.js";
import { type ChainRecord, ChainStatus, LeasePurpose } from "./chain-record.js";
import type { Changes, Lease, StoredTokens } from "./chain-store.js";
import type { EngineDeps } from "./engine-deps.js";
import { afterError, backoffMs, budgetExhaustedFor } from "./error-budget.js";
import { ChainTable } from "./table-definition.js";
import { keepaliveDueAtMs, windowOpensAtMs } from "./timing.js";

/** The access token a holder obtained, in plaintext, for the caller that triggered the refresh. */
export interface FreshAccess {
  readonly accessToken: string;
  readonly expiresAtMs: number;
  readonly generation: number;
}

export type ProtocolResult =
  | { readonly kind: "refreshed"; readonly fresh: FreshAccess | undefined }
  /** Someone committed a newer generation meanwhile: re-read it. */
  | { readonly kind: "superseded" }
  /** Exact no longer accepts the chain; it is BROKEN now and due for a heal. */
  | { readonly kind: "broken" }
  | { readonly kind: "failed"; readonly error: BrokerError };

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex").slice(0, 16);
}

/** Where a chain sits in the refresher's sparse index after it got a new generation. */
export function dueAfterCommit(
  record: Pick<ChainRecord, "lastVendAtMs">,
  access: { readonly windowOpensAtMs: number; readonly lifetimeMs: number } | undefined,
  refreshIssuedAtMs: number,
  keepaliveDays: number,
  nowMs: number,
): Record<string, unknown> {
  const hot = access && record.lastVendAtMs !== undefined && record.lastVendAtMs >= nowMs - access.lifetimeMs;
  return {
    dueShard: ChainTable.dueShardValue,
    dueAtMs: hot ? access.windowOpensAtMs : keepaliveDueAtMs(refreshIssuedAtMs, keepaliveDays),
  };
}

/**
 * One token call under a lease we hold, and the one write that records its outcome.
 *
 * Order matters: a body carrying a refresh token is committed before anything else (invariant
 * 4); an ambiguous outcome makes the chain SUSPECT and is never resent (invariant 5); the next
 * holder of a SUSPECT chain spends its one probe, and if the probe cannot prove the chain alive
 * the chain is BROKEN. Too-early never marks a chain dead (invariant 6).
 */
export class TokenProtocol {
  readonly #deps: EngineDeps;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  /** Runs the refresh for `lease`; `vended` marks that a consumer is waiting (the chain is hot). */
  async refresh(lease: Lease, options: { readonly vended: boolean }): Promise<ProtocolResult> {
    const { store, now, config, log } = this.#deps;
    const record = lease.previous;
    let held = lease;

    const staleNote = record.inflight;
    if (staleNote?.purpose === LeasePurpose.Probe || (staleNote && record.status === ChainStatus.Suspect)) {
      log.warn("probe holder vanished without an answer; chain is broken", {
        connectionId: record.connectionId,
      });
      return this.#fail(held, this.#broken(EventReason.LostAnswer, now()));
    }
    if (staleNote || record.status === ChainStatus.Suspect) {
      // A holder died mid-call, or a call's outcome was unknown: Exact may have rotated the
      // chain. This call is the single probe that settles it.
      if (staleNote)
        log.warn("previous holder left a write-ahead note; probing", { connectionId: record.connectionId });
      const renewed = await store.renewLease(
        held,
        { purpose: LeasePurpose.Probe, nowMs: now(), leaseMs: config.leaseMs },
        { set: { status: ChainStatus.Suspect, statusReason: EventReason.LostAnswer } },
      );
      if (!renewed) return { kind: "superseded" };
      held = renewed;
    }

    const exhaustedFor = budgetExhaustedFor(record.tokenErrors, now());
    if (exhaustedFor !== undefined) {
      await store.releaseLease(held);
      return {
        kind: "failed",
        error: new Throttled(`error budget for connection "${record.connectionId}" is spent for this hour`, {
          retryAfterSeconds: exhaustedFor,
        }),
      };
    }

    let refreshToken: string;
    try {
      refreshToken = await this.#deps.cipher.decrypt(record.refreshCt ?? "", {
        connectionId: record.connectionId,
        kind: "refresh",
      });
    } catch (error) {
      if (!(error instanceof TokenDecryptError)) throw error;
      // The Encryption SDK reports a KMS outage like a bad ciphertext. Only when a fresh
      // round trip works is it this ciphertext that is bad, and the chain truly lost.
      if (!(await this.#cipherWorks(record.connectionId))) {
        await store.releaseLease(held);
        throw new Error("token encryption is unavailable (KMS?); the chain is untouched", { cause: error });
      }
      log.error("stored refresh token does not decrypt; chain is broken", {
        connectionId: record.connectionId,
      });
      return this.#fail(held, this.#broken(EventReason.DecryptFailed, now()));
    }

    let clientSecret: string;
    try {
      clientSecret = (await this.#deps.secrets.get(record.secretId)).clientSecret;
    } catch (error) {
      await store.releaseLease(held);
      if (error instanceof SecretUnavailable) {
        return {
          kind: "failed",
          error: new ReauthRequired(`${error.message}; fix the secret, then vend again`, { cause: error }),
        };
      }
      throw error;
    }

    // The item could have been written by hand: the secret and refresh token go to Exact only.
    try {
      checkBaseUrl(record.baseUrl, config.allowLoopback);
    } catch (error) {
      await store.releaseLease(held);
      return {
        kind: "failed",
        error: new ReauthRequired(`connection "${record.connectionId}": ${(error as Error).message}`),
      };
    }

    // Abort the call before the lease ends, so nobody else can start one while ours is in flight.
    const timeoutMs = Math.min(config.httpTimeoutMs, held.untilMs - now() - 2_000);
    if (timeoutMs < 500) {
      await store.releaseLease(held);
      return {
        kind: "failed",
        error: new ExactUnavailable("lease too short for a token call", { retryAfterSeconds: 1 }),
      };
    }
    const startedMs = now();
    const outcome = await this.#deps.oauth.refresh(
      record.baseUrl,
      { clientId: record.clientId, clientSecret },
      refreshToken,
      timeoutMs,
    );
    const arrivalMs = now();
    log.info("token call answered", {
      connectionId: record.connectionId,
      outcome: outcome.kind,
      probe: held.purpose === LeasePurpose.Probe,
      latencyMs: arrivalMs - startedMs,
      generation: record.generation,
    });
    return this.#settle(held, outcome, arrivalMs, options.vended);
  }

  async #settle(
    lease: Lease,
    outcome: TokenOutcome,
    arrivalMs: number,
    vended: boolean,
  ): Promise<ProtocolResult> {
    const record = lease.previous;
    const probing = lease.purpose === LeasePurpose.Probe;
    const errors = countsAsExactError(outcome)
      ? { tokenErrors: afterError(record.tokenErrors, arrivalMs) }
      : {};

    if (outcome.kind !== "outcome_unknown" && outcome.rotated) {
      const refusal =
        outcome.kind === "tokens"
          ? {}
          : {
              ...errors,
              backoffUntilMs: arrivalMs + 5_000,
              backoffReason:
                outcome.kind === "too_early" || outcome.kind === "rate_limited" ? "throttled" : "unavailable",
            };
      const fresh = await this.#commit(lease, outcome.rotated, arrivalMs, vended, refusal);
      if (outcome.kind === "tokens" || fresh.kind !== "refreshed") return fresh;
      // A refusal that still rotated the chain: the new refresh token is safe; report the refusal.
      return { kind: "failed", error: this.#refusalError(outcome, record) };
    }

    switch (outcome.kind) {
      case "tokens":
        throw new Error("unreachable: tokens always carry a refresh token");
      case "too_early":
        // Our window estimate was early (clock skew): the chain is fine. A SUSPECT chain is
        // proven intact too: its refresh token is still the current one.
        return this.#fail(
          lease,
          {
            set: {
              ...errors,
              status: ChainStatus.Active,
              backoffUntilMs: arrivalMs + 5_000,
              backoffReason: "throttled",
              windowOpensAtMs: Math.max(record.windowOpensAtMs ?? 0, arrivalMs + 5_000),
            },
            remove: ["statusReason"],
          },
          this.#refusalError(outcome, record),
        );
      case "chain_dead": {
        // An old-token answer to a probe means the lost call did rotate the chain: its answer is what was lost.
        const reason =
          probing && outcome.reason === DeadReason.OldToken ? EventReason.LostAnswer : outcome.reason;
        return this.#fail(lease, this.#broken(reason, arrivalMs, errors));
      }
      case "client_rejected":
        return this.#fail(lease, {
          set: {
            ...errors,
            status: ChainStatus.ReauthRequired,
            statusReason: EventReason.InvalidClient,
            statusChangedAtMs: arrivalMs,
          },
          remove: ["dueShard", "dueAtMs"],
        });
      case "rate_limited":
      case "unavailable": {
        const streak = (record.failureStreak ?? 0) + 1;
        const waitMs =
          outcome.retryAfterSeconds !== undefined
            ? outcome.retryAfterSeconds * 1000
            : backoffMs(streak, this.#deps.random);
        return this.#fail(
          lease,
          {
            set: {
              ...errors,
              failureStreak: streak,
              backoffUntilMs: arrivalMs + waitMs,
              backoffReason: outcome.kind === "rate_limited" ? "throttled" : "unavailable",
            },
          },
          this.#refusalError(outcome, record, waitMs),
        );
      }
      case "outcome_unknown":
        if (probing) return this.#fail(lease, this.#broken(EventReason.LostAnswer, arrivalMs));
        return this.#fail(
          lease,
          {
            set: {
              status: ChainStatus.Suspect,
              statusReason: EventReason.LostAnswer,
              statusChangedAtMs: arrivalMs,
              backoffUntilMs: arrivalMs + 2_000,
              backoffReason: "unavailable",
            },
          },
          new ExactUnavailable(
            `token call for connection "${record.connectionId}" got no answer; chain is being checked`,
            {
              retryAfterSeconds: 2,
            },
          ),
        );
    }
  }

  async #commit(
    lease: Lease,
    issued: IssuedTokens,
    arrivalMs: number,
    vended: boolean,
    extra: Record<string, unknown>,
  ): Promise<ProtocolResult> {
    const { cipher, config, store, log } = this.#deps;
    const record = lease.previous;
    const binding = { connectionId: record.connectionId };
    const refreshCt = await cipher.encrypt(issued.refreshToken, { ...binding, kind: "refresh" });
    let access: StoredTokens["access"];
    let lifetimeMs = 0;
    if (issued.accessToken && issued.expiresInSeconds) {
      lifetimeMs = issued.expiresInSeconds * 1000;
      access = {
        accessCt: await cipher.encrypt(issued.accessToken, { ...binding, kind: "access" }),
        accessIssuedAtMs: arrivalMs,
        accessExpiresAtMs: arrivalMs + lifetimeMs,
        windowOpensAtMs: windowOpensAtMs(arrivalMs, issued.expiresInSeconds, config),
      };
    }
    const generation = lease.generation + 1;
    const hotness = vended ? { lastVendAtMs: arrivalMs, hotGeneration: generation } : {};
    const window =
      access ?? (record.windowOpensAtMs ? { windowOpensAtMs: record.windowOpensAtMs } : undefined);
    const lifetimeForDue = lifetimeMs || (record.accessExpiresAtMs ?? 0) - (record.accessIssuedAtMs ?? 0);
    const changes: Changes = {
      set: {
        ...extra,
        ...hotness,
        ...dueAfterCommit(
          { lastVendAtMs: vended ? arrivalMs : record.lastVendAtMs },
          window ? { windowOpensAtMs: window.windowOpensAtMs, lifetimeMs: lifetimeForDue } : undefined,
          arrivalMs,
          config.keepaliveDays,
          arrivalMs,
        ),
        status: ChainStatus.Active,
        statusChangedAtMs: arrivalMs,
        failureStreak: 0,
      },
      remove: ["statusReason", ...(extra.backoffUntilMs ? [] : ["backoffUntilMs", "backoffReason"])],
    };
    const result = await store.commitTokens(
      lease,
      {
        refresh: { refreshCt, refreshHash: hashToken(issued.refreshToken), refreshIssuedAtMs: arrivalMs },
        ...(access ? { access } : {}),
      },
      changes,
    );
    if (result === "superseded") {
      log.warn("a newer generation was committed while we held Exact's answer; ours is dropped", {
        connectionId: record.connectionId,
        generation,
      });
      return { kind: "superseded" };
    }
    if (result === "committed_after_lease_lost") {
      log.warn("lease expired before commit; tokens stored on the unchanged generation", {
        connectionId: record.connectionId,
        generation,
      });
    }
    return {
      kind: "refreshed",
      fresh:
        access && issued.accessToken
          ? { accessToken: issued.accessToken, expiresAtMs: access.accessExpiresAtMs, generation }
          : undefined,
    };
  }

  async #cipherWorks(connectionId: string): Promise<boolean> {
    const binding = { connectionId, kind: "access" } as const;
    try {
      return (
        (await this.#deps.cipher.decrypt(await this.#deps.cipher.encrypt("probe", binding), binding)) ===
        "probe"
      );
    } catch {
      return false;
    }
  }

  /** BROKEN stays in the refresher's index, due at once: the refresher triggers its heal. */
  #broken(reason: EventReason, nowMs: number, extra: Record<string, unknown> = {}): Changes {
    return {
      set: {
        ...extra,
        status: ChainStatus.Broken,
        statusReason: reason,
        statusChangedAtMs: nowMs,
        dueShard: ChainTable.dueShardValue,
        dueAtMs: nowMs,
      },
      remove: ["backoffUntilMs", "backoffReason"],
    };
  }

  async #fail(lease: Lease, changes: Changes, error?: BrokerError): Promise<ProtocolResult> {
    const released = await this.#deps.store.releaseLease(lease, changes);
    if (!released) return { kind: "superseded" };
    if (error) return { kind: "failed", error };
    const { connectionId, generation } = lease.previous;
    const status = changes.set?.status;
    const reason = (changes.set?.statusReason ?? EventReason.LoginFailed) as EventReason;
    const at = new Date(this.#deps.now()).toISOString();
    if (status === ChainStatus.Broken) {
      this.#deps.log.warn("chain broken", { connectionId, reason, generation });
      await this.#deps.events.publish({
        type: BrokerEventType.ChainBroken,
        detail: { connectionId, generation, reason, at },
      });
      return { kind: "broken" };
    }
    await this.#deps.events.publish({
      type: BrokerEventType.ReauthRequired,
      detail: { connectionId, generation, reason, at },
    });
    return { kind: "failed", error: new ReauthRequired(reauthMessage(connectionId, String(status), reason)) };
  }

  #refusalError(outcome: TokenOutcome, record: ChainRecord, waitMs?: number): BrokerError {
    const id = record.connectionId;
    switch (outcome.kind) {
      case "too_early":
        return new Throttled(`Exact refused the refresh of connection "${id}" as too early`, {
          retryAfterSeconds: 5,
        });
      case "rate_limited":
        return new Throttled(`Exact rate-limited connection "${id}"`, {
          retryAfterSeconds: Math.ceil((waitMs ?? outcome.retryAfterSeconds * 1000) / 1000),
        });
      case "unavailable":
        return new ExactUnavailable(
          `Exact token endpoint unavailable for connection "${id}" (${outcome.detail})`,
          {
            retryAfterSeconds: Math.max(1, Math.ceil((waitMs ?? 5_000) / 1000)),
          },
        );
      default:
        return new ExactUnavailable(`Exact refused the refresh of connection "${id}"`, {
          retryAfterSeconds: 60,
        });
    }
  }
}

/** The message a consumer sees for a chain that needs an operator; says what to do. */
export function reauthMessage(connectionId: string, status: string, reason: string): string {
  if (reason === EventReason.InvalidClient) {
    return `connection "${connectionId}": Exact rejected the client ID or secret; fix the connection's secret, then run: exact-broker heal --id ${connectionId}`;
  }
  return `connection "${connectionId}" needs an operator (status ${status}, reason ${reason}); fix the cause (see exact-broker status --id ${connectionId}), then run: exact-broker heal --id ${connectionId}`;
}
