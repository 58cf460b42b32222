import { type BrokerError, Throttled } from "../errors.js";
import { EventReason } from "../events/broker-events.js";
import {
  countsAsExactError,
  type IssuedTokens,
  type TokenOutcome,
} from "../exact/classify-token-response.js";
import { type AppState, REJECTION_PROBE_MS } from "./app-states.js";
import type { ErrorBudget } from "./chain-record.js";
import type { EngineDeps } from "./engine-deps.js";
import { afterError, budgetExhaustedFor } from "./error-budget.js";
import type { LeaseSession } from "./lease-session.js";
import { backedOff } from "./lease-transitions.js";
import { restingStatus } from "./login-budget.js";
import type { LoginFailures, LoginUser } from "./login-failures.js";
import type { LoginMode, LoginOutcome } from "./login-protocol.js";
import { OutagePacing } from "./outage-pacing.js";
import { capReached } from "./token-call-cap.js";

/** Whether a login may start: its code exchange and its identity check can be risked now. */
export type Admission =
  | {
      readonly kind: "go";
      /** The app's state at the token endpoint (code mode), for the bookkeeping after the exchange. */
      readonly app?: AppState;
      /** This login holds the app's re-check of a REST API rejection: its identity check is it. */
      readonly apiCheckClaimed: boolean;
    }
  /** Held back before any login: the lease has ended with a backoff. */
  | { readonly kind: "held"; readonly outcome: LoginOutcome };

/** Exact's answer to the exchange, and the client secret it was sent with (outage-pacing.ts `after`). */
interface Answer {
  readonly outcome: TokenOutcome;
  readonly arrivalMs: number;
  readonly clientSecret: string;
}

/** What the code exchange after a login brought. */
export type Exchanged =
  | {
      readonly kind: "issued";
      readonly issued: IssuedTokens;
      /** The answer was a refusal that still carried tokens (its kind). */
      readonly refusal?: TokenOutcome["kind"];
      /** When the exchange that started the chain was sent (epoch ms). */
      readonly sentAtMs: number;
      /** The chain's budget after a 4xx answer that still carried tokens. */
      readonly tokenErrors?: ErrorBudget;
      /** For the app's bookkeeping, after the chain is stored ({@link CodeExchange.noteForApp}). */
      readonly answer: Answer;
    }
  /** Nothing to store: the outcome is recorded (the lease has ended). */
  | { readonly kind: "done"; readonly outcome: LoginOutcome };

/**
 * A heal's code exchange is a token call like a refresh (the same endpoint, app and user at
 * Exact), so it gets what a refresh's call gets (token-protocol.ts): the chain's error budget
 * (8 an hour, design invariant 7) checked before the login and charged with a 4xx answer; the
 * app's state (outage-pacing.ts: during an outage or a rejection one chain of the app asks for
 * all; while Exact's REST API refuses the app's scopes one chain re-checks every 15 minutes);
 * and `invalid_client` read as the app's failure (one re-read of the secret, one resend if it
 * changed, else one AppRejected for the app), not as a failed login. Every hold is decided
 * before the login, which would spend a TOTP step and a login attempt for nothing.
 */
export class CodeExchange {
  readonly #deps: EngineDeps;
  readonly #failures: LoginFailures;
  readonly #pacing: OutagePacing;

  constructor(deps: EngineDeps, failures: LoginFailures) {
    this.#deps = deps;
    this.#failures = failures;
    this.#pacing = new OutagePacing(deps);
  }

  /** Before the login (`clientSecret`: the one its code exchange would send). */
  async admit(session: LeaseSession, mode: LoginMode, clientSecret: string): Promise<Admission> {
    const { now } = this.#deps;
    const record = session.record;
    if (mode === "heal") {
      const spentFor = budgetExhaustedFor(record.tokenErrors, now());
      if (spentFor !== undefined) {
        return this.#hold(
          session,
          new Throttled(
            `connection "${record.connectionId}": its token-endpoint error budget is spent for this hour; no login until its code exchange can be afforded`,
            { retryAfterSeconds: spentFor },
          ),
        );
      }
    }
    // Every login ends in an identity check: none while Exact's API refuses the app, but one re-check.
    const api = await this.#pacing.apiGate(record);
    if (api.kind === "held") return this.#hold(session, api.error);
    if (mode !== "heal") return { kind: "go", apiCheckClaimed: api.probing };
    const gate = await this.#pacing.gate(session, clientSecret, { status: restingStatus(record) });
    if (gate.kind === "held") {
      const { result } = gate;
      return {
        kind: "held",
        outcome: result.kind === "failed" ? { kind: "failed", error: result.error } : { kind: "superseded" },
      };
    }
    return { kind: "go", app: gate.app, apiCheckClaimed: api.probing };
  }

  /** The exchange of a login's `code`: Exact's tokens, or the outcome its refusal was recorded as. */
  async exchange(
    session: LeaseSession,
    args: {
      readonly code: string;
      readonly clientSecret: string;
      readonly app: AppState | undefined;
      readonly user: LoginUser;
    },
  ): Promise<Exchanged> {
    const { oauth, config, secrets, now } = this.#deps;
    const record = session.record;
    let sentAtMs = now();
    const send = (clientSecret: string) => {
      session.callStarted({ tokenEndpoint: true });
      sentAtMs = now();
      return oauth.exchangeCode(
        record.baseUrl,
        { clientId: record.clientId, clientSecret },
        args.code,
        record.redirectUri,
        config.httpTimeoutMs,
      );
    };
    let clientSecret = args.clientSecret;
    let outcome = await send(clientSecret);
    if (outcome.kind === "client_rejected" && !outcome.scope && !outcome.rotated) {
      // As for a refresh: the secret may have changed in Exact's App Center and in ours since we
      // read it. invalid_client processed nothing, so the code is still good for one more try.
      const current = await secrets.clientSecret(record.secretId, { forceFetch: true });
      if (
        current !== clientSecret &&
        session.remainingMs() >= config.httpTimeoutMs &&
        !capReached(record.connectionId, session.tokenCallsToday, now())
      ) {
        clientSecret = current;
        outcome = await send(current);
      }
    }
    const arrivalMs = now();
    const tokenErrors = countsAsExactError(outcome) ? afterError(record.tokenErrors, arrivalMs) : undefined;
    if (outcome.kind !== "outcome_unknown" && outcome.rotated) {
      return {
        kind: "issued",
        issued: outcome.rotated,
        ...(outcome.kind === "tokens" ? {} : { refusal: outcome.kind }),
        sentAtMs,
        ...(tokenErrors ? { tokenErrors } : {}),
        answer: { outcome, arrivalMs, clientSecret },
      };
    }
    const recorded =
      outcome.kind === "client_rejected"
        ? await this.#rejected(session, outcome.scope, clientSecret, tokenErrors)
        : // Nothing to store. A lost exchange may have started a chain we never saw; the next login starts another.
          await this.#failures.retryLater(session, {
            reason: EventReason.LoginFailed,
            detail: `code exchange: ${outcome.kind}`,
            user: args.user,
            ...(tokenErrors ? { tokenErrors } : {}),
          });
    await this.noteForApp(session, args.app, { outcome, arrivalMs, clientSecret });
    return { kind: "done", outcome: recorded };
  }

  /** After the chain's own write: what the exchange's answer says about the app (an outage, its end). */
  async noteForApp(session: LeaseSession, app: AppState | undefined, answer: Answer): Promise<void> {
    if (app) {
      await this.#pacing.after(session.record, app, answer.outcome, answer.arrivalMs, answer.clientSecret);
    }
  }

  /**
   * Exact rejects the app's secret or scopes: the app's failure, not the login's (not counted as
   * a failed login). The chain rests until the app's next try; one AppRejected for the app.
   */
  async #rejected(
    session: LeaseSession,
    scope: boolean,
    clientSecret: string,
    tokenErrors: ErrorBudget | undefined,
  ): Promise<LoginOutcome> {
    const nowMs = this.#deps.now();
    const untilMs = nowMs + REJECTION_PROBE_MS;
    const written = await session.finish(
      backedOff(
        { backoffUntilMs: untilMs, backoffReason: "unavailable", ...(tokenErrors ? { tokenErrors } : {}) },
        nowMs,
        { status: restingStatus(session.record), dueAtMs: untilMs },
      ),
    );
    if (!written) return { kind: "superseded" };
    const error = await this.#pacing.rejected(
      session,
      scope ? "scope_violated" : "invalid_client",
      clientSecret,
    );
    return { kind: "failed", error };
  }

  /** No login now: the chain rests (restingStatus) until `error.retryAfterSeconds` have passed. */
  async #hold(session: LeaseSession, error: BrokerError): Promise<Admission> {
    const nowMs = this.#deps.now();
    const untilMs = nowMs + (error.retryAfterSeconds ?? 1) * 1000;
    const written = await session.finish(
      backedOff(
        {
          backoffUntilMs: untilMs,
          backoffReason: error instanceof Throttled ? "throttled" : "unavailable",
        },
        nowMs,
        { status: restingStatus(session.record), dueAtMs: untilMs },
      ),
    );
    return { kind: "held", outcome: written ? { kind: "failed", error } : { kind: "superseded" } };
  }
}
