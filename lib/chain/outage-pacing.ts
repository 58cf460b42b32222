import { type BrokerError, ExactUnavailable, ReauthRequired } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import { gatewayOutage, type TokenOutcome, UnavailableCause } from "../exact/classify-token-response.js";
import { type AppRejection, type AppState, probeIntervalMs, REJECTION_PROBE_MS } from "./app-states.js";
import type { ChainRecord, ChainStatus } from "./chain-record.js";
import { announce, type EngineDeps } from "./engine-deps.js";
import type { LeaseSession } from "./lease-session.js";
import { backedOff } from "./lease-transitions.js";
import type { ProtocolResult } from "./token-refusals.js";
import { hashToken } from "./token-seal.js";

/** Whether this holder may make its token call now. */
export type Gate =
  | { readonly kind: "go"; readonly app: AppState }
  /** No call: the app is in an outage and another chain probes, or Exact rejects the app (the lease has ended). */
  | { readonly kind: "held"; readonly result: ProtocolResult };

/** A chain waits this long past the outage's next probe before it tries itself (ms, spread). */
const FOLLOW_SPREAD_MS = 5_000;

/**
 * Answers that say Exact is down for every chain of the app (an outage): not processed (503, 429,
 * a bare page), or a gateway that could not reach Exact (502, 504; which may also come after
 * processing, so the chain that got one is SUSPECT besides: token-refusals.ts).
 */
export function isOutage(outcome: TokenOutcome): boolean {
  return (
    outcome.kind === "rate_limited" ||
    gatewayOutage(outcome) ||
    (outcome.kind === "unavailable" &&
      (outcome.cause === UnavailableCause.Overloaded || outcome.cause === UnavailableCause.Maintenance))
  );
}

/**
 * Outage pacing for one app at one Exact instance (app-states.ts): during an outage one chain
 * asks Exact for all of them, whichever comes first after the next probe time, so the cost
 * rotates; the others back off until just after it, without spending an error. An app Exact
 * rejects (its secret, its scopes) is one event per rejected secret, and the chains holding that
 * secret stop calling until theirs changes or a paced probe finds it accepted again.
 */
export class OutagePacing {
  readonly #deps: EngineDeps;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  /**
   * Before a token call: go, or hold the chain (ending the lease with a backoff) and say why.
   * `hold.status`: the status a held chain is written with (a heal's: not HEALING, which its
   * renewal showed, but what it rests in until its next try).
   */
  async gate(
    session: LeaseSession,
    clientSecret: string,
    hold: { readonly status?: ChainStatus } = {},
  ): Promise<Gate> {
    const { apps, now, random } = this.#deps;
    const record = session.record;
    const app = await apps.read(record.clientId, record.baseUrl);
    const nowMs = now();
    // Only this chain's own secret can be held by a rejection: another one (the operator put a
    // new secret in place) is tried, and its answer leaves the rejected secret's record alone.
    const secretHash = hashToken(clientSecret);
    const rejected = app.rejectedSecrets?.[secretHash];
    if (!rejected && app.outageSinceMs === undefined) return { kind: "go", app };
    const dueAtMs = (rejected ? rejected.nextProbeAtMs : app.nextProbeAtMs) ?? nowMs;
    if (
      dueAtMs <= nowMs &&
      (rejected
        ? await apps.claimRejectionProbe(record.clientId, record.baseUrl, secretHash, nowMs)
        : await apps.claimProbe(
            record.clientId,
            record.baseUrl,
            record.connectionId,
            nowMs,
            nowMs + probeIntervalMs(nowMs - (app.outageSinceMs ?? nowMs)),
          ))
    ) {
      return { kind: "go", app };
    }
    const waitUntilMs = Math.max(dueAtMs, nowMs) + Math.round(random() * FOLLOW_SPREAD_MS);
    const written = await session.finish(
      backedOff({ backoffUntilMs: waitUntilMs, backoffReason: "unavailable" }, nowMs, {
        dueAtMs: waitUntilMs,
        ...(hold.status ? { status: hold.status } : {}),
      }),
    );
    if (!written) return { kind: "held", result: { kind: "superseded" } };
    const retryAfterSeconds = Math.max(1, Math.ceil((waitUntilMs - nowMs) / 1000));
    const error = rejected
      ? rejectionError(record, rejected.reason)
      : new ExactUnavailable(
          `Exact has not answered app ${record.clientId}'s token calls since ${new Date(app.outageSinceMs ?? nowMs).toISOString()}; one connection of the app probes for all`,
          { retryAfterSeconds },
        );
    return { kind: "held", result: { kind: "failed", error } };
  }

  /**
   * When the chain should try again after an outage answer: just after the app's next probe
   * (epoch ms), never before the answer's own `Retry-After`.
   */
  pacedUntilMs(app: AppState, outcome: TokenOutcome, arrivalMs: number): number {
    return (
      arrivalMs + probeWaitMs(app, outcome, arrivalMs) + Math.round(this.#deps.random() * FOLLOW_SPREAD_MS)
    );
  }

  /**
   * After the chain's own write: what the answer says about the app. An outage answer paces every
   * chain of the app; any answer Exact's OAuth server gave ends an outage; a success is noted;
   * an answer other than a rejection to `clientSecret` (the one the call was sent with) ends
   * that secret's rejection.
   */
  async after(
    record: ChainRecord,
    app: AppState,
    outcome: TokenOutcome,
    arrivalMs: number,
    clientSecret: string,
  ): Promise<void> {
    const { apps, log } = this.#deps;
    try {
      if (isOutage(outcome)) {
        await apps.outage(record.clientId, record.baseUrl, arrivalMs, probeWaitMs(app, outcome, arrivalMs));
      } else if (outcome.kind !== "outcome_unknown" && !(outcome.kind === "unavailable")) {
        await apps.answered(record.clientId, record.baseUrl, arrivalMs, app, outcome.kind === "tokens");
        const secretHash = hashToken(clientSecret);
        if (app.rejectedSecrets?.[secretHash] && outcome.kind !== "client_rejected") {
          await apps.accepted(record.clientId, record.baseUrl, secretHash);
        }
      }
    } catch (error) {
      log.warn("could not record the app's state; the chain's own is stored", { error: error as Error });
    }
  }

  /**
   * Before an identity check. While Exact's REST API refuses the app's scopes, one chain of the
   * app re-checks every REJECTION_PROBE_MS (`probing`: it holds that re-check); the others are
   * held, with the error to record, until just after it.
   */
  async apiGate(
    record: ChainRecord,
  ): Promise<
    | { readonly kind: "go"; readonly probing: boolean }
    | { readonly kind: "held"; readonly error: BrokerError }
  > {
    const { apps, now, random } = this.#deps;
    const { apiRejected } = await apps.read(record.clientId, record.baseUrl);
    if (!apiRejected) return { kind: "go", probing: false };
    const nowMs = now();
    if (
      apiRejected.nextCheckAtMs <= nowMs &&
      (await apps.claimApiCheck(record.clientId, record.baseUrl, nowMs))
    ) {
      return { kind: "go", probing: true };
    }
    const waitMs = Math.max(apiRejected.nextCheckAtMs - nowMs, 0) + Math.round(random() * FOLLOW_SPREAD_MS);
    return { kind: "held", error: scopeError(record, waitMs) };
  }

  /** `/current/Me` answered "Application Scope Violated": recorded for the app, announced once per app. */
  async apiRefused(session: LeaseSession): Promise<BrokerError> {
    const { apps, now } = this.#deps;
    const record = session.record;
    if (await apps.apiRejected(record.clientId, record.baseUrl, now())) {
      await announce(this.#deps, BrokerEventType.AppRejected, session, EventReason.ScopeViolated);
    }
    return scopeError(record, REJECTION_PROBE_MS);
  }

  /** Exact rejected the app (its secret or scopes): recorded and announced once per rejected secret. */
  async rejected(session: LeaseSession, reason: AppRejection, clientSecret: string): Promise<BrokerError> {
    const { apps, now } = this.#deps;
    const record = session.record;
    if (await apps.rejected(record.clientId, record.baseUrl, reason, hashToken(clientSecret), now())) {
      await announce(
        this.#deps,
        BrokerEventType.AppRejected,
        session,
        reason === "scope_violated" ? EventReason.ScopeViolated : EventReason.InvalidClient,
      );
    }
    return rejectionError(record, reason);
  }
}

/** How long the app's next probe waits after an outage answer (ms): its pace, or the answer's Retry-After if longer. */
function probeWaitMs(app: AppState, outcome: TokenOutcome, arrivalMs: number): number {
  const retryAfterMs = "retryAfterSeconds" in outcome ? (outcome.retryAfterSeconds ?? 0) * 1000 : 0;
  return Math.max(probeIntervalMs(arrivalMs - (app.outageSinceMs ?? arrivalMs)), retryAfterMs);
}

function scopeError(record: ChainRecord, waitMs: number): BrokerError {
  return new ExactUnavailable(
    `Exact's API refuses app ${record.clientId}: "Application Scope Violated"; update the app's scopes in Exact's App Center (its connections resume by themselves)`,
    { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) },
  );
}

function rejectionError(record: ChainRecord, reason: AppRejection): BrokerError {
  return new ReauthRequired(
    reason === "scope_violated"
      ? `Exact refuses app ${record.clientId}: "Application Scope Violated"; update the app's scopes in Exact's App Center (its connections resume by themselves)`
      : `Exact rejected the client ID or secret of app ${record.clientId}; put the app's current secret in the connection's secret (its connections resume by themselves)`,
  );
}
