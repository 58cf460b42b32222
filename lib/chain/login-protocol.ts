import {
  type BrokerError,
  ChainBusy,
  ConfigurationError,
  DuplicateChain,
  ExactUnavailable,
  ReauthRequired,
} from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import { checkBaseUrl } from "../exact/base-url.js";
import type { LoginResult } from "../exact/login/login-driver.js";
import { hasLoginCredentials } from "../secrets/connection-secret.js";
import { type ChainRecord, ChainStatus, LeasePurpose } from "./chain-record.js";
import type { Changes, Lease, StoredTokens } from "./chain-store.js";
import type { EngineDeps } from "./engine-deps.js";
import { afterError, backoffMs, budgetExhaustedFor } from "./error-budget.js";
import { ChainTable } from "./table-definition.js";
import { windowOpensAtMs } from "./timing.js";
import { dueAfterCommit, type FreshAccess, hashToken } from "./token-protocol.js";

/** Failed logins risked per chain in any rolling hour: Exact locks an account after 5 in a row. */
export const LOGIN_FAILURES_PER_HOUR = 3;

export type LoginMode = "heal" | "implicit";

export type LoginOutcome =
  | { readonly kind: "logged_in"; readonly fresh: FreshAccess }
  | { readonly kind: "superseded" }
  | { readonly kind: "failed"; readonly error: BrokerError };

/** Seconds until another login may be risked, or undefined when one may be risked now. */
export function loginBlockedFor(record: ChainRecord, nowMs: number): number | undefined {
  const budgetWaitMs = (budgetExhaustedFor(record.loginFailures, nowMs, LOGIN_FAILURES_PER_HOUR) ?? 0) * 1000;
  const backoffWaitMs = record.status === ChainStatus.Broken ? (record.backoffUntilMs ?? 0) - nowMs : 0;
  const waitMs = Math.max(budgetWaitMs, backoffWaitMs);
  return waitMs > 0 ? Math.ceil(waitMs / 1000) : undefined;
}

/**
 * A login as the chain's user under a lease we hold: the fallback that heals a broken chain
 * (authorization code, then a code exchange) and the normal path of an implicit-only chain
 * (the access token straight from the redirect, no refresh token ever).
 *
 * The same rules as a refresh: one write at the end, conditional on our fence, that stores what
 * Exact gave us; a `/current/Me` check that it is the chain's own Exact user before anything is
 * stored; and budgets, because failed logins lock the account (design invariant 7): a wrong
 * password or a locked account stops at REAUTH_REQUIRED at once, other failures back off and at
 * most three are risked per hour.
 */
export class LoginProtocol {
  readonly #deps: EngineDeps;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  async run(lease: Lease, mode: LoginMode, options: { readonly vended: boolean }): Promise<LoginOutcome> {
    const { store, now, config, secrets, log } = this.#deps;
    const record = lease.previous;
    const held = await store.renewLease(
      lease,
      {
        purpose: mode === "heal" ? LeasePurpose.Heal : LeasePurpose.Login,
        nowMs: now(),
        leaseMs: config.loginLeaseMs,
      },
      mode === "heal" ? { set: { status: ChainStatus.Healing, statusChangedAtMs: now() } } : {},
    );
    if (!held) return { kind: "superseded" };

    try {
      checkBaseUrl(record.baseUrl, config.allowLoopback);
    } catch (error) {
      return this.#reauth(held, EventReason.LoginFailed, (error as Error).message);
    }
    const secret = await secrets.get(record.secretId, { forceFetch: true });
    if (!hasLoginCredentials(secret)) {
      return this.#reauth(
        held,
        EventReason.NoLoginCredentials,
        `secret "${record.secretId}" holds no username, password and totpSecret, so the broker cannot log in by itself`,
      );
    }

    const driver = this.#deps.login;
    if (!driver) {
      await store.releaseLease(held);
      throw new ConfigurationError(
        "this function has no login driver; logins run in fallback-login (set FALLBACK_LOGIN_FUNCTION_NAME)",
      );
    }
    let result: LoginResult;
    const startedMs = now();
    try {
      result = await driver.login({
        baseUrl: record.baseUrl,
        clientId: record.clientId,
        redirectUri: record.redirectUri,
        responseType: mode === "heal" ? "code" : "token",
        credentials: { username: secret.username, password: secret.password, totpSecret: secret.totpSecret },
        ...(record.lastTotpStep !== undefined ? { lastTotpStep: record.lastTotpStep } : {}),
        timeoutMs: held.untilMs - now() - 10_000,
      });
    } catch (error) {
      return this.#loginFailed(held, error);
    }
    log.info("logged in as the chain's user", {
      connectionId: record.connectionId,
      mode,
      latencyMs: now() - startedMs,
      generation: record.generation,
    });

    let issued: { accessToken: string; expiresInSeconds: number; refreshToken?: string };
    if (result.kind === "code") {
      const outcome = await this.#deps.oauth.exchangeCode(
        record.baseUrl,
        { clientId: record.clientId, clientSecret: secret.clientSecret },
        result.code,
        record.redirectUri,
        config.httpTimeoutMs,
      );
      if (outcome.kind !== "tokens") {
        // A lost exchange may have started a chain we never saw; the next login starts another.
        return this.#retryLater(
          held,
          result.totpStep,
          EventReason.LoginFailed,
          `code exchange: ${outcome.kind}`,
        );
      }
      issued = outcome.rotated;
    } else {
      issued = result;
    }
    return this.#commit(held, mode, issued, result.totpStep, options.vended);
  }

  async #commit(
    lease: Lease,
    mode: LoginMode,
    issued: { accessToken: string; expiresInSeconds: number; refreshToken?: string },
    totpStep: number,
    vended: boolean,
  ): Promise<LoginOutcome> {
    const { oauth, cipher, config, store, now, log } = this.#deps;
    const record = lease.previous;
    const me = await oauth.me(record.baseUrl, issued.accessToken, config.httpTimeoutMs);
    if (record.exactUserId && me.userId !== record.exactUserId) {
      return this.#reauth(
        lease,
        EventReason.WrongUser,
        `the login is Exact user ${me.userName}, not this chain's user; fix the connection's secret`,
        { lastTotpStep: totpStep },
      );
    }
    if (!record.exactUserId) {
      const owner = await store.claimGuard(record.clientId, me.userId, record.connectionId);
      if (owner !== record.connectionId) {
        return this.#reauth(
          lease,
          EventReason.DuplicateUser,
          `Exact user ${me.userName} is already connected as "${owner}"`,
          { lastTotpStep: totpStep },
          new DuplicateChain(
            `connection "${record.connectionId}": Exact user ${me.userName} is already connected as "${owner}"`,
          ),
        );
      }
    }

    const arrivalMs = now();
    const binding = { connectionId: record.connectionId };
    const lifetimeMs = issued.expiresInSeconds * 1000;
    // Implicit chains have no refresh window; the refresher logs in a window ahead of expiry instead.
    const window =
      mode === "implicit"
        ? arrivalMs + lifetimeMs - 2 * config.refreshWindowSeconds * 1000
        : windowOpensAtMs(arrivalMs, issued.expiresInSeconds, config);
    const tokens: StoredTokens = {
      access: {
        accessCt: await cipher.encrypt(issued.accessToken, { ...binding, kind: "access" }),
        accessIssuedAtMs: arrivalMs,
        accessExpiresAtMs: arrivalMs + lifetimeMs,
        windowOpensAtMs: window,
      },
      ...(issued.refreshToken
        ? {
            refresh: {
              refreshCt: await cipher.encrypt(issued.refreshToken, { ...binding, kind: "refresh" }),
              refreshHash: hashToken(issued.refreshToken),
              refreshIssuedAtMs: arrivalMs,
            },
          }
        : {}),
    };
    const generation = lease.generation + 1;
    const result = await store.commitTokens(lease, tokens, {
      set: {
        status: ChainStatus.Active,
        statusChangedAtMs: arrivalMs,
        exactUserId: me.userId,
        exactUserName: me.userName,
        division: me.division,
        lastTotpStep: totpStep,
        failureStreak: 0,
        ...(vended ? { lastVendAtMs: arrivalMs, hotGeneration: generation } : {}),
        ...dueAfterCommit(
          { lastVendAtMs: vended ? arrivalMs : record.lastVendAtMs },
          { windowOpensAtMs: window, lifetimeMs },
          issued.refreshToken ? arrivalMs : (record.refreshIssuedAtMs ?? arrivalMs),
          config.keepaliveDays,
          arrivalMs,
        ),
      },
      remove: [
        "statusReason",
        "backoffUntilMs",
        "backoffReason",
        "loginFailures",
        "lastLoginFailure",
        "tokenErrors",
      ],
    });
    if (result === "superseded") return { kind: "superseded" };
    if (mode === "heal") {
      log.info("chain healed by a login", { connectionId: record.connectionId, generation });
      await this.#event(BrokerEventType.ChainHealed, record.connectionId, generation, EventReason.Healed);
    }
    return {
      kind: "logged_in",
      fresh: { accessToken: issued.accessToken, expiresAtMs: arrivalMs + lifetimeMs, generation },
    };
  }

  async #loginFailed(lease: Lease, error: unknown): Promise<LoginOutcome> {
    const name = error instanceof Error ? error.name : "";
    const record = lease.previous;
    // A step spent before the failure (the code was sent) must not be used again either.
    const spentStep = (error as { totpStep?: unknown }).totpStep;
    const totpStep = typeof spentStep === "number" ? spentStep : undefined;
    const spent = totpStep !== undefined ? { lastTotpStep: totpStep } : {};
    this.#deps.log.warn("login failed", { connectionId: record.connectionId, errorType: name || "unknown" });
    switch (name) {
      case "LoginBadCredentials":
        return this.#reauth(
          lease,
          EventReason.BadCredentials,
          "Exact refused the user name or password; fix the connection's secret",
          spent,
        );
      case "LoginLocked":
        return this.#reauth(
          lease,
          EventReason.Locked,
          "Exact locked the account after failed logins; unlock it, then heal",
          spent,
        );
      case "LoginBadTotp":
        // Once may be a step boundary; twice in a row is a wrong TOTP secret, and a third
        // attempt would bring the account closer to Exact's lock.
        if (record.lastLoginFailure === EventReason.BadTotp) {
          return this.#reauth(
            lease,
            EventReason.BadTotp,
            "Exact refused the TOTP code twice; check the connection's TOTP secret",
          );
        }
        return this.#retryLater(lease, totpStep, EventReason.BadTotp, "TOTP code refused");
      case "LoginUnavailable":
        return this.#retryLater(
          lease,
          totpStep,
          EventReason.LoginFailed,
          "Exact unavailable during the login",
          false,
        );
      default:
        // Driver errors name the step that failed and never a credential; anything else is summarised.
        return this.#retryLater(
          lease,
          totpStep,
          EventReason.LoginFailed,
          name === "LoginPageNotUnderstood"
            ? (error as Error).message
            : `login failed (${name || "unknown error"})`,
        );
    }
  }

  /** A failure that may pass: back off, count it, keep the chain broken (it stays due for a heal). */
  async #retryLater(
    lease: Lease,
    totpStep: number | undefined,
    reason: EventReason,
    detail: string,
    counts = true,
  ): Promise<LoginOutcome> {
    const { now, random, store } = this.#deps;
    const record = lease.previous;
    const nowMs = now();
    const streak = (record.failureStreak ?? 0) + 1;
    const failures = counts
      ? afterError(record.loginFailures, nowMs, LOGIN_FAILURES_PER_HOUR)
      : record.loginFailures;
    const waitMs = Math.max(
      backoffMs(streak + 3, random),
      (budgetExhaustedFor(failures, nowMs, LOGIN_FAILURES_PER_HOUR) ?? 0) * 1000,
    );
    const wasActive = record.status === ChainStatus.Active || record.status === ChainStatus.New;
    const changes: Changes = {
      set: {
        // An implicit chain that could not log in keeps its (maybe still valid) token; a
        // broken chain stays broken, due again when the backoff ends.
        status: wasActive ? record.status : ChainStatus.Broken,
        statusReason: wasActive ? record.statusReason : (record.statusReason ?? reason),
        ...(failures ? { loginFailures: failures } : {}),
        lastLoginFailure: reason,
        failureStreak: streak,
        backoffUntilMs: nowMs + waitMs,
        backoffReason: "unavailable",
        ...(totpStep !== undefined ? { lastTotpStep: totpStep } : {}),
        ...(wasActive ? {} : { dueShard: ChainTable.dueShardValue, dueAtMs: nowMs + waitMs }),
      },
    };
    if (!(await store.releaseLease(lease, changes))) return { kind: "superseded" };
    const retryAfterSeconds = Math.ceil(waitMs / 1000);
    return {
      kind: "failed",
      error:
        reason === EventReason.LoginFailed && !counts
          ? new ExactUnavailable(`connection "${record.connectionId}": ${detail}`, { retryAfterSeconds })
          : new ChainBusy(
              `connection "${record.connectionId}": login failed (${reason}: ${detail}); retrying later`,
              {
                retryAfterSeconds,
              },
            ),
    };
  }

  async #reauth(
    lease: Lease,
    reason: EventReason,
    detail: string,
    extra: Record<string, unknown> = {},
    error?: BrokerError,
  ): Promise<LoginOutcome> {
    const record = lease.previous;
    const released = await this.#deps.store.releaseLease(lease, {
      set: {
        ...extra,
        status: ChainStatus.ReauthRequired,
        statusReason: reason,
        statusChangedAtMs: this.#deps.now(),
        lastLoginFailure: reason,
      },
      remove: ["dueShard", "dueAtMs"],
    });
    if (!released) return { kind: "superseded" };
    this.#deps.log.error("chain needs an operator", { connectionId: record.connectionId, reason });
    await this.#event(BrokerEventType.ReauthRequired, record.connectionId, record.generation, reason);
    return {
      kind: "failed",
      error:
        error ??
        new ReauthRequired(
          `connection "${record.connectionId}": ${detail}; then run: exact-broker heal --id ${record.connectionId}`,
        ),
    };
  }

  async #event(
    type: BrokerEventType,
    connectionId: string,
    generation: number,
    reason: EventReason,
  ): Promise<void> {
    await this.#deps.events.publish({
      type,
      detail: { connectionId, generation, reason, at: new Date(this.#deps.now()).toISOString() },
    });
  }
}
