import { LOGIN_DRIVER_MIN_MS } from "../config-timing.js";
import {
  type BrokerError,
  ConfigurationError,
  DuplicateChain,
  ExactUnavailable,
  ReauthRequired,
} from "../errors.js";
import { EventReason } from "../events/broker-events.js";
import { checkBaseUrl } from "../exact/base-url.js";
import type { LoginResult } from "../exact/login/login-driver.js";
import { loginSecretName } from "../infra/names.js";
import { ChainSource, ChainStatus, LeasePurpose } from "./chain-record.js";
import { CodeExchange, type Exchanged } from "./code-exchange.js";
import type { EngineDeps } from "./engine-deps.js";
import { budgetExhaustedFor } from "./error-budget.js";
import { IdentityCheck, type StartedChain } from "./identity-check.js";
import type { LeaseSession } from "./lease-session.js";
import { LOGIN_FAILURES_PER_HOUR } from "./login-budget.js";
import { LoginFailures } from "./login-failures.js";
import { capReached } from "./token-call-cap.js";
import type { FreshAccess } from "./token-protocol.js";
import { type IssuedPair, prepareSealer, sealTokens } from "./token-seal.js";

export type LoginMode = "heal" | "implicit";

export type LoginOutcome =
  | { readonly kind: "logged_in"; readonly fresh: FreshAccess }
  | { readonly kind: "superseded" }
  | { readonly kind: "failed"; readonly error: BrokerError };

/**
 * A login as the chain's user under a lease we hold: the fallback that heals a broken chain
 * (authorization code, then a code exchange) and the normal path of an implicit-only chain
 * (the access token straight from the redirect, no refresh token ever).
 *
 * Persist first, like every door: key material is prepared before the login, and whatever
 * Exact issued is stored as VERIFYING by the next write; the `/current/Me` check follows
 * (identity-check.ts) and may fail without losing the chain. Logins have budgets, because
 * failed logins lock the account (design invariant 7): a wrong password or a locked account
 * stops at REAUTH_REQUIRED at once, other failures back off and at most three are risked per
 * hour, counting a login whose exchange or check failed. A code login's exchange is a token call
 * like a refresh's (code-exchange.ts): no login while the chain's error budget or the app's state
 * would hold that call back, and `invalid_client` is the app's failure, not the login's.
 */
export class LoginProtocol {
  readonly #deps: EngineDeps;
  readonly #identity: IdentityCheck;
  readonly #failures: LoginFailures;
  readonly #exchange: CodeExchange;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#identity = new IdentityCheck(deps);
    this.#failures = new LoginFailures(deps);
    this.#exchange = new CodeExchange(deps, this.#failures);
  }

  /** @param options.operator an operator asked (`exact-broker heal`): the user's login budget does not stop it */
  async run(
    session: LeaseSession,
    mode: LoginMode,
    options: { readonly vended: boolean; readonly operator?: boolean },
  ): Promise<LoginOutcome> {
    const { now, config, secrets, log, login: driver, totpClaims } = this.#deps;
    const record = session.record;
    // Decided before the chain shows HEALING: an invocation too short for a login changes nothing.
    session.requireTime(
      LOGIN_DRIVER_MIN_MS + config.httpTimeoutMs,
      "a login and its code exchange",
      config.loginLeaseMs,
    );
    const renewed = await session.renew(
      mode === "heal" ? LeasePurpose.Heal : LeasePurpose.Login,
      config.loginLeaseMs,
      // A blocked user's re-check shows BLOCKED throughout: vends go on answering UserBlocked.
      mode === "heal" && record.status !== ChainStatus.Blocked ? { status: ChainStatus.Healing } : undefined,
    );
    if (!renewed) return { kind: "superseded" };
    try {
      checkBaseUrl(record.baseUrl, config.allowLoopback);
    } catch (error) {
      return this.#failures.reauth(session, EventReason.LoginFailed, (error as Error).message);
    }
    // A code login ends in a token call: none past Exact's daily cap, and no login wasted on it.
    const capped =
      mode === "heal" ? capReached(record.connectionId, session.tokenCallsToday, now()) : undefined;
    if (capped) {
      return this.#failures.retryLater(session, {
        reason: EventReason.DailyCap,
        detail: capped.message,
        counts: false,
        minWaitMs: (capped.retryAfterSeconds ?? 0) * 1000,
      });
    }
    const secret = await secrets.loginCredentials(record, { forceFetch: true });
    if (!secret) {
      return this.#failures.reauth(
        session,
        EventReason.NoLoginCredentials,
        `no username, password and totpSecret in secret "${loginSecretName(record.connectionId)}" or "${record.secretId}", so the broker cannot log in by itself`,
      );
    }
    // Read before the login, which a missing client secret would waste: the code exchange needs it.
    const clientSecret = await secrets.clientSecret(record.secretId, { forceFetch: true });
    if (!driver || !totpClaims) {
      throw new ConfigurationError(
        "this function has no login driver; logins run in fallback-login (set FALLBACK_LOGIN_FUNCTION_NAME)",
      );
    }
    // The chain's error budget and the app's state may hold the login back (code-exchange.ts).
    const admitted = await this.#exchange.admit(session, mode, clientSecret);
    if (admitted.kind === "held") return admitted.outcome;
    const sealer = await prepareSealer(this.#deps.cipher, {
      connectionId: record.connectionId,
      incarnation: session.incarnation,
    });
    // Exact locks the user, not the chain: the user's failed logins, by any connection, count too.
    const user = { username: secret.username, logins: await totpClaims.read(secret.username) };
    const userBlockedFor = budgetExhaustedFor(user.logins.loginFailures, now(), LOGIN_FAILURES_PER_HOUR);
    // An operator's heal (the secret was fixed) is theirs to risk.
    if (userBlockedFor !== undefined && !options.operator) {
      return this.#failures.retryLater(session, {
        reason: EventReason.LoginFailed,
        detail: `Exact user ${secret.username} has ${LOGIN_FAILURES_PER_HOUR} failed logins this hour (any connection)`,
        counts: false,
        minWaitMs: userBlockedFor * 1000,
      });
    }
    const lastTotpStep = user.logins.lastStep;
    session.requireTime(LOGIN_DRIVER_MIN_MS + config.httpTimeoutMs, "a login and its code exchange");

    let result: LoginResult;
    const startedMs = now();
    // When the request that starts the chain left: Exact starts it while processing the request,
    // so of two starts of one user, the one sent later is the live one (an answer may arrive late).
    let sentAtMs = startedMs;
    // An implicit login's answer is the chain's next token; a code login's answer is only a code.
    if (mode === "implicit") session.callStarted({ tokenEndpoint: false });
    try {
      result = await driver.login({
        baseUrl: record.baseUrl,
        clientId: record.clientId,
        redirectUri: record.redirectUri,
        responseType: mode === "heal" ? "code" : "token",
        credentials: { username: secret.username, password: secret.password, totpSecret: secret.totpSecret },
        ...(lastTotpStep !== undefined ? { lastTotpStep } : {}),
        claimTotpStep: async (step) => {
          // Logins of one user queue on TOTP steps: by this login's turn, others may have failed.
          const latest = await totpClaims.read(secret.username);
          if (!options.operator && budgetExhaustedFor(latest.loginFailures, now(), LOGIN_FAILURES_PER_HOUR)) {
            throw new Error(
              `the Exact user's failed logins reached ${LOGIN_FAILURES_PER_HOUR} this hour while this login waited`,
            );
          }
          return totpClaims.claim({
            username: secret.username,
            step,
            connectionId: record.connectionId,
            nowMs: now(),
          });
        },
        // The code exchange follows inside the same lease.
        timeoutMs: session.remainingMs() - config.httpTimeoutMs,
      });
    } catch (error) {
      return this.#failures.loginFailed(session, error, user);
    }
    log.info("logged in as the chain's user", {
      connectionId: record.connectionId,
      mode,
      latencyMs: now() - startedMs,
    });

    let issued: IssuedPair;
    let refusal: string | undefined;
    let exchanged: Extract<Exchanged, { kind: "issued" }> | undefined;
    if (result.kind === "code") {
      if (session.remainingMs() < config.httpTimeoutMs) {
        // The code dies unused (nothing started at Exact), but the login happened: it counts.
        return this.#failures.retryLater(session, {
          reason: EventReason.LoginFailed,
          detail: "the login left no time for the code exchange",
          user,
        });
      }
      const outcome = await this.#exchange.exchange(session, {
        code: result.code,
        clientSecret,
        app: admitted.app,
        user,
      });
      if (outcome.kind === "done") return outcome.outcome;
      exchanged = outcome;
      issued = outcome.issued;
      refusal = outcome.refusal;
      sentAtMs = outcome.sentAtMs;
    } else {
      issued = result;
    }
    const arrivalMs = now();
    const tokens = await sealTokens(sealer, issued, arrivalMs, record.mode, config);
    const note = {
      source: mode === "heal" ? ChainSource.Heal : ChainSource.Login,
      startedAtMs: sentAtMs,
      // A blocked user's re-check goes back to BLOCKED if its chain is dropped (token-refusals.ts).
      statusBefore:
        record.status === ChainStatus.Blocked
          ? ChainStatus.Blocked
          : mode === "heal"
            ? ChainStatus.Broken
            : record.status,
    };
    const stored = await session.storeStartedChain({
      tokens,
      note,
      leaseMs: config.leaseMs,
      ...(options.vended ? { vendedAtMs: arrivalMs } : {}),
      ...(exchanged?.tokenErrors ? { tokenErrors: exchanged.tokenErrors } : {}),
    });
    if (exchanged) await this.#exchange.noteForApp(session, admitted.app, exchanged.answer);
    if (!stored) return { kind: "superseded" };
    if (refusal !== undefined || !issued.accessToken || !issued.expiresInSeconds) {
      // Stored, but without an access token to check it with: the next refresh brings one.
      return failed(
        new ExactUnavailable(
          `connection "${record.connectionId}": the code exchange answered ${refusal ?? "without an access token"}; the new chain is stored and checked later`,
          {
            retryAfterSeconds: 5,
          },
        ),
      );
    }
    const chain: StartedChain = {
      issued: { ...issued, accessToken: issued.accessToken, expiresInSeconds: issued.expiresInSeconds },
      tokens,
      note,
    };
    const verified = await this.#identity.run(session, chain, {
      afterLogin: true,
      vended: options.vended,
      apiCheckClaimed: admitted.apiCheckClaimed,
    });
    switch (verified.kind) {
      case "verified":
        return { kind: "logged_in", fresh: verified.fresh };
      case "superseded":
        return { kind: "superseded" };
      case "failed":
        return failed(verified.error);
      case "duplicate":
        return failed(
          new DuplicateChain(
            `connection "${record.connectionId}": Exact user ${verified.identity.userName} is already connected as "${verified.owner}"`,
          ),
        );
      default:
        return failed(
          new ReauthRequired(
            `connection "${record.connectionId}": the login is Exact user ${verified.identity.userName}, not this chain's user; fix the connection's secret, then run: exact-broker heal --id ${record.connectionId}`,
          ),
        );
    }
  }
}

function failed(error: BrokerError): LoginOutcome {
  return { kind: "failed", error };
}
