import { type BrokerError, ChainBusy, ExactUnavailable, ReauthRequired } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import {
  LoginBadCredentials,
  LoginBadTotp,
  LoginLocked,
  LoginPageNotUnderstood,
  LoginUnavailable,
} from "../exact/login/login-errors.js";
import { ChainStatus, ConnectionMode } from "./chain-record.js";
import { announce, type EngineDeps } from "./engine-deps.js";
import { afterError, backoffMs, budgetExhaustedFor } from "./error-budget.js";
import type { LeaseSession } from "./lease-session.js";
import { backedOff, needsOperator } from "./lease-transitions.js";
import { LOGIN_FAILURES_PER_HOUR } from "./login-budget.js";
import type { LoginOutcome } from "./login-protocol.js";

/**
 * What a failed login does to the chain (design invariant 7: Exact locks accounts, so logins
 * never loop). A wrong password, a locked account, a TOTP code refused twice or missing
 * credentials stop at REAUTH_REQUIRED with an event; anything that may pass backs off and counts
 * against the login budget (three failed logins per chain per rolling hour).
 */
export class LoginFailures {
  readonly #deps: EngineDeps;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  async loginFailed(session: LeaseSession, error: unknown): Promise<LoginOutcome> {
    const record = session.record;
    this.#deps.log.warn("login failed", {
      connectionId: record.connectionId,
      errorType: error instanceof Error ? error.name : "unknown",
    });
    if (error instanceof LoginBadCredentials) {
      return this.reauth(
        session,
        EventReason.BadCredentials,
        "Exact refused the user name or password; fix the connection's secret",
      );
    }
    if (error instanceof LoginLocked) {
      return this.reauth(
        session,
        EventReason.Locked,
        "Exact locked the account after failed logins; unlock it, then heal",
      );
    }
    if (error instanceof LoginBadTotp) {
      // Once may be a step boundary; twice in a row is a wrong TOTP secret, and a third
      // attempt would bring the account closer to Exact's lock.
      return record.lastLoginFailure === EventReason.BadTotp
        ? this.reauth(
            session,
            EventReason.BadTotp,
            "Exact refused the TOTP code twice; check the connection's TOTP secret",
          )
        : this.retryLater(session, EventReason.BadTotp, "TOTP code refused");
    }
    if (error instanceof LoginUnavailable) {
      return this.retryLater(session, EventReason.LoginFailed, "Exact unavailable during the login", false);
    }
    if (error instanceof LoginPageNotUnderstood)
      return this.retryLater(session, EventReason.LoginFailed, error.message);
    // Driver errors name the step that failed and never a credential; anything else is summarised.
    return this.retryLater(
      session,
      EventReason.LoginFailed,
      `login failed (${error instanceof Error ? error.name : "unknown error"})`,
    );
  }

  /** A failure that may pass: back off, count it, keep a broken chain broken (due again when the backoff ends). */
  async retryLater(
    session: LeaseSession,
    reason: EventReason,
    detail: string,
    counts = true,
  ): Promise<LoginOutcome> {
    const { now, random } = this.#deps;
    const record = session.record;
    const nowMs = now();
    const streak = (record.failureStreak ?? 0) + 1;
    const failures = counts
      ? afterError(record.loginFailures, nowMs, LOGIN_FAILURES_PER_HOUR)
      : record.loginFailures;
    const waitMs = Math.max(
      backoffMs(streak + 3, random),
      (budgetExhaustedFor(failures, nowMs, LOGIN_FAILURES_PER_HOUR) ?? 0) * 1000,
    );
    // An implicit chain that could not log in keeps its (maybe still valid) token.
    const keeps = record.mode === ConnectionMode.Implicit && record.status !== ChainStatus.Broken;
    const written = await session.finish(
      backedOff(
        { backoffUntilMs: nowMs + waitMs, backoffReason: "unavailable", failureStreak: streak },
        nowMs,
        {
          status: keeps ? record.status : ChainStatus.Broken,
          ...(failures ? { loginFailures: failures } : {}),
          lastLoginFailure: reason,
          ...(keeps ? {} : { dueAtMs: nowMs + waitMs }),
        },
      ),
    );
    if (!written) return { kind: "superseded" };
    const retryAfterSeconds = Math.ceil(waitMs / 1000);
    return failed(
      reason === EventReason.LoginFailed && !counts
        ? new ExactUnavailable(`connection "${record.connectionId}": ${detail}`, { retryAfterSeconds })
        : new ChainBusy(
            `connection "${record.connectionId}": login failed (${reason}: ${detail}); retrying later`,
            {
              retryAfterSeconds,
            },
          ),
    );
  }

  async reauth(session: LeaseSession, reason: EventReason, detail: string): Promise<LoginOutcome> {
    if (!(await session.finish(needsOperator(reason, this.#deps.now(), { lastLoginFailure: reason })))) {
      return { kind: "superseded" };
    }
    this.#deps.log.error("chain needs an operator", { connectionId: session.connectionId, reason });
    await announce(this.#deps, BrokerEventType.ReauthRequired, session, reason);
    return failed(
      new ReauthRequired(
        `connection "${session.connectionId}": ${detail}; then run: exact-broker heal --id ${session.connectionId}`,
      ),
    );
  }
}

function failed(error: BrokerError): LoginOutcome {
  return { kind: "failed", error };
}
