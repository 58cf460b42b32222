import { type BrokerError, ChainBusy, ExactUnavailable, ReauthRequired } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import {
  LoginBadCredentials,
  LoginBadTotp,
  LoginError,
  LoginLocked,
  LoginPageNotUnderstood,
  LoginUnavailable,
} from "../exact/login/login-errors.js";
import { BLOCKED_LOGIN_RECHECK_MS, ChainStatus, type ErrorBudget } from "./chain-record.js";
import { announce, type EngineDeps } from "./engine-deps.js";
import { afterError, backoffMs, budgetExhaustedFor } from "./error-budget.js";
import type { LeaseSession } from "./lease-session.js";
import { backedOff, needsOperator } from "./lease-transitions.js";
import { LOGIN_FAILURES_PER_HOUR, restingStatus } from "./login-budget.js";
import type { LoginOutcome } from "./login-protocol.js";
import type { UserLogins } from "./totp-step-claims.js";

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

  /** Maps a failed login (a LoginError of the driver) to what happens to the chain and the user's budget. */
  async loginFailed(session: LeaseSession, error: unknown, known: LoginUser): Promise<LoginOutcome> {
    const record = session.record;
    const sentStep = error instanceof LoginError ? error.totpStep : undefined;
    const user: LoginUser = { ...known, ...(sentStep !== undefined ? { sentStep } : {}) };
    this.#deps.log.warn("login failed", {
      connectionId: record.connectionId,
      errorType: error instanceof Error ? error.name : "unknown",
    });
    if (error instanceof LoginBadCredentials) {
      return this.reauth(
        session,
        EventReason.BadCredentials,
        "Exact refused the user name or password; fix the connection's secret",
        user,
      );
    }
    if (error instanceof LoginLocked) {
      return this.reauth(
        session,
        EventReason.Locked,
        "Exact locked the account after failed logins; unlock it, then heal",
        user,
      );
    }
    if (error instanceof LoginBadTotp) {
      // Once may be a step boundary; twice in a row (for this user, by any connection) is a wrong
      // TOTP secret, and a third attempt would bring the account closer to Exact's lock.
      // "In a row" for the user: its login just before this one (the step it claimed last) was the refused one.
      const userTwice =
        user.logins.lastLoginFailure === EventReason.BadTotp &&
        user.logins.lastFailedStep !== undefined &&
        user.logins.lastFailedStep === user.logins.lastStep;
      const twice = record.lastLoginFailure === EventReason.BadTotp || userTwice;
      return twice
        ? this.reauth(
            session,
            EventReason.BadTotp,
            "Exact refused the TOTP code twice; check the connection's TOTP secret",
            user,
          )
        : this.retryLater(session, { reason: EventReason.BadTotp, detail: "TOTP code refused", user });
    }
    if (error instanceof LoginUnavailable) {
      return this.retryLater(session, {
        reason: EventReason.LoginFailed,
        detail: "Exact unavailable during the login",
        counts: false,
      });
    }
    // Driver errors name the step that failed and never a credential; anything else is summarised.
    const detail =
      error instanceof LoginPageNotUnderstood
        ? error.message
        : `login failed (${error instanceof Error ? error.name : "unknown error"})`;
    return this.retryLater(session, { reason: EventReason.LoginFailed, detail, user });
  }

  /**
   * A failure that may pass: back off, count it (per chain, and per user when `user` is given),
   * keep a broken chain broken (due again when the backoff ends) and a blocked user's connection
   * BLOCKED (its next re-check at the slow pace, BLOCKED_LOGIN_RECHECK_MS). `minWaitMs`: back
   * off at least this long (the user's own budget is spent). `tokenErrors`: the chain's budget
   * after a code exchange Exact refused with a 4xx (it counts with the refreshes').
   */
  async retryLater(
    session: LeaseSession,
    args: {
      readonly reason: EventReason;
      readonly detail: string;
      readonly counts?: boolean;
      readonly user?: LoginUser;
      readonly minWaitMs?: number;
      readonly tokenErrors?: ErrorBudget;
    },
  ): Promise<LoginOutcome> {
    const { now, random } = this.#deps;
    const { reason, detail } = args;
    const counts = args.counts ?? true;
    const record = session.record;
    const nowMs = now();
    const streak = (record.failureStreak ?? 0) + 1;
    const failures = counts
      ? afterError(record.loginFailures, nowMs, LOGIN_FAILURES_PER_HOUR)
      : record.loginFailures;
    const waitMs = Math.max(
      backoffMs(streak + 3, random),
      (budgetExhaustedFor(failures, nowMs, LOGIN_FAILURES_PER_HOUR) ?? 0) * 1000,
      args.minWaitMs ?? 0,
      record.status === ChainStatus.Blocked ? BLOCKED_LOGIN_RECHECK_MS : 0,
    );
    // An implicit chain that could not log in keeps its (maybe still valid) token; a broken or
    // blocked one is due again when its wait ends.
    const status = restingStatus(record);
    const due = status === ChainStatus.Broken || status === ChainStatus.Blocked;
    const written = await session.finish(
      backedOff(
        {
          backoffUntilMs: nowMs + waitMs,
          backoffReason: "unavailable",
          failureStreak: streak,
          ...(args.tokenErrors ? { tokenErrors: args.tokenErrors } : {}),
        },
        nowMs,
        {
          status,
          ...(failures ? { loginFailures: failures } : {}),
          lastLoginFailure: reason,
          ...(due ? { dueAtMs: nowMs + waitMs } : {}),
        },
      ),
    );
    if (!written) return { kind: "superseded" };
    if (counts && args.user) await this.#userFailed(args.user, reason);
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

  /** Nothing automatic can help: REAUTH_REQUIRED and an event; a credential refusal also counts for the user. */
  async reauth(
    session: LeaseSession,
    reason: EventReason,
    detail: string,
    user?: LoginUser,
  ): Promise<LoginOutcome> {
    if (!(await session.finish(needsOperator(reason, this.#deps.now(), { lastLoginFailure: reason })))) {
      return { kind: "superseded" };
    }
    this.#deps.log.error("chain needs an operator", { connectionId: session.connectionId, reason });
    if (user) await this.#userFailed(user, reason);
    await announce(this.#deps, BrokerEventType.ReauthRequired, session, reason);
    return failed(
      new ReauthRequired(
        `connection "${session.connectionId}": ${detail}; then run: exact-broker heal --id ${session.connectionId}`,
      ),
    );
  }

  /** The user's own record, after the chain's state is stored (a failure here loses nothing of the chain). */
  async #userFailed(user: LoginUser, reason: EventReason): Promise<void> {
    try {
      await this.#deps.totpClaims?.recordFailure({
        username: user.username,
        reason,
        nowMs: this.#deps.now(),
      });
    } catch (error) {
      this.#deps.log.error("could not record a failed login for the Exact user", { error: error as Error });
    }
  }
}

/** The Exact user a login was for, and what the broker knew of that user's logins before it. */
export interface LoginUser {
  readonly username: string;
  readonly logins: UserLogins;
  /** The TOTP step whose code the failed login sent, if it got that far. */
  readonly sentStep?: number;
}

function failed(error: BrokerError): LoginOutcome {
  return { kind: "failed", error };
}
