import { Antiforgery } from "./antiforgery.js";
import type { User } from "./state.js";
import { newAuthorizationCode, newOpaqueId, newSessionId } from "./tokens.js";

/** Exact: "5 failed attempts in a row lock the account for 15 minutes" (sim time). */
export const MAX_FAILURES_IN_A_ROW = 5;
export const LOCK_MS = 15 * 60 * 1000;
/** The B2C code only carries the login from `confirmed` to `signin-azureb2c`: a few seconds in real life. */
const B2C_CODE_TTL_MS = 5 * 60 * 1000;

/**
 * One login on Exact's side, from the user-name post to `signin-azureb2c`: it remembers where
 * to go afterwards. Its id travels to B2C and back as `state`.
 */
export interface LoginFlow {
  readonly id: string;
  /** The auth request to continue with, a local path and query. */
  readonly returnUrl: string;
  /** The user name typed on the start page; B2C shows it, the user may change it. */
  readonly usernameHint: string;
}

/** B2C's state of one sign-in page, keyed by its `transId`. */
export interface B2cTransaction {
  readonly transId: string;
  /** Sent back as the `X-CSRF-TOKEN` header and as `csrf_token`, and held in the `x-ms-cpim-csrf` cookie. */
  readonly csrf: string;
  readonly flow: LoginFlow;
  /** Set by a successful `SelfAsserted`. */
  user: User | undefined;
  /** Set by `confirmed`: the transaction is over. */
  finished: boolean;
}

/** What B2C posts back to Exact's `signin-azureb2c`: single use, bound to its flow. */
export interface B2cCode {
  readonly code: string;
  readonly idToken: string;
  readonly flow: LoginFlow;
  readonly user: User;
  readonly expiresAtMs: number;
}

/** Exact's session: the value of the session cookie names it. Lives until reset. */
export interface Session {
  readonly id: string;
  readonly user: User;
}

/** Per user: the lock-out rule and the TOTP step rule. */
export interface UserGuard {
  failuresInARow: number;
  lockedUntilMs: number;
  /** The last TOTP time step the user logged in with; -1 before any. */
  lastTotpStep: number;
}

function base64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/**
 * An id_token in shape only (unsigned, `alg: none`): Exact's side checks that it is the one
 * issued with the code, never its contents, and neither may a client.
 */
function fakeIdToken(user: User, nowMs: number): string {
  const header = base64urlJson({ alg: "none", typ: "JWT" });
  const payload = base64urlJson({
    sub: user.userId,
    name: user.fullName,
    iat: Math.floor(nowMs / 1000),
    nonce: newOpaqueId(12),
  });
  return `${header}.${payload}.`;
}

/**
 * Everything the interactive login keeps, in memory, forgotten on reset: flows, B2C
 * transactions and codes, sessions, consents and the per-user guards.
 */
export class LoginState {
  readonly antiforgery = new Antiforgery();
  private readonly flows = new Map<string, LoginFlow>();
  private readonly transactions = new Map<string, B2cTransaction>();
  private readonly b2cCodes = new Map<string, B2cCode>();
  private readonly sessions = new Map<string, Session>();
  private readonly consents = new Set<string>();
  private readonly guards = new Map<string, UserGuard>();

  startFlow(returnUrl: string, usernameHint: string): LoginFlow {
    const flow: LoginFlow = { id: newOpaqueId(), returnUrl, usernameHint };
    this.flows.set(flow.id, flow);
    return flow;
  }

  flow(id: string | undefined): LoginFlow | undefined {
    return id === undefined ? undefined : this.flows.get(id);
  }

  /** `transId` is opaque to clients; B2C's start with `StateProperties=`, so do these. */
  startTransaction(flow: LoginFlow): B2cTransaction {
    const transaction: B2cTransaction = {
      transId: `StateProperties=${newOpaqueId()}`,
      csrf: newOpaqueId(),
      flow,
      user: undefined,
      finished: false,
    };
    this.transactions.set(transaction.transId, transaction);
    return transaction;
  }

  /** An open transaction; finished ones are gone. */
  transaction(transId: string | undefined): B2cTransaction | undefined {
    const transaction = transId === undefined ? undefined : this.transactions.get(transId);
    return transaction?.finished ? undefined : transaction;
  }

  /** `confirmed`: the transaction ends and hands its user to Exact through a one-time code. */
  finishTransaction(transaction: B2cTransaction, user: User, nowMs: number): B2cCode {
    transaction.finished = true;
    this.transactions.delete(transaction.transId);
    const code: B2cCode = {
      code: newAuthorizationCode(),
      idToken: fakeIdToken(user, nowMs),
      flow: transaction.flow,
      user,
      expiresAtMs: nowMs + B2C_CODE_TTL_MS,
    };
    this.b2cCodes.set(code.code, code);
    return code;
  }

  /** Takes a B2C code out: whatever the caller then decides, it cannot be presented again. */
  takeB2cCode(code: string | undefined): B2cCode | undefined {
    const record = code === undefined ? undefined : this.b2cCodes.get(code);
    if (record !== undefined) {
      this.b2cCodes.delete(record.code);
    }
    return record;
  }

  /** `signin-azureb2c`: the flow is over, the user has a session. */
  startSession(flow: LoginFlow, user: User): Session {
    this.flows.delete(flow.id);
    const session: Session = { id: newSessionId(), user };
    this.sessions.set(session.id, session);
    return session;
  }

  session(id: string | undefined): Session | undefined {
    return id === undefined ? undefined : this.sessions.get(id);
  }

  hasConsent(user: User, clientId: string): boolean {
    return this.consents.has(`${user.userId} ${clientId}`);
  }

  giveConsent(user: User, clientId: string): void {
    this.consents.add(`${user.userId} ${clientId}`);
  }

  guard(user: User): UserGuard {
    let guard = this.guards.get(user.userId);
    if (guard === undefined) {
      guard = { failuresInARow: 0, lockedUntilMs: 0, lastTotpStep: -1 };
      this.guards.set(user.userId, guard);
    }
    return guard;
  }
}
