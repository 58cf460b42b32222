import { randomUUID } from "node:crypto";
import { ValidationError } from "../errors.js";
import type { AppSpec, AuthorizeRequest, UserSpec } from "./config.js";
import { newAccessToken, newAuthorizationCode, newRefreshToken, TokenStyle } from "./tokens.js";

/** Exact: "An authorization code is valid for 3 minutes". */
const CODE_TTL_MS = 3 * 60 * 1000;

const DEFAULT_DIVISION = 123456;

export interface Lifetimes {
  accessTtlMs: number;
  refreshTtlMs: number;
}

export interface App {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly redirectUris: readonly string[];
}

export interface User {
  readonly userId: string;
  readonly username: string;
  readonly password: string;
  readonly totpSecret: string;
  /**
   * `CurrentDivision`: the company the user last opened; one of `divisions`. Changes at runtime
   * ({@link SimState.setUserDivisions}), as Exact's follows the browser.
   */
  division: number;
  /** The divisions the user can open through the REST API, ascending; access can be revoked at runtime. */
  divisions: readonly number[];
  readonly fullName: string;
  readonly email: string;
}

/** What the control API may show of a user: never the password or the TOTP secret. */
export type PublicUser = Omit<User, "password" | "totpSecret">;

/**
 * Exact keeps ONE valid chain per (client ID, user): the pair. A new authorization replaces
 * `chain`, which makes every refresh token of the previous chain obsolete ("superseded").
 */
export interface Pair {
  readonly key: string;
  readonly clientId: string;
  readonly user: User;
  chainsStarted: number;
  chain: Chain | undefined;
  /** The only access token accepted when old access tokens are revoked (variant). */
  newestAccessToken: string | undefined;
}

/** A refresh-token chain: only `refreshToken` may be redeemed, once. */
export interface Chain {
  readonly pair: Pair;
  /** 1 for the tokens of the code exchange, +1 for every rotation. */
  generation: number;
  refreshToken: string;
  /** The too-early rule counts from here: the last time an access token was issued. */
  lastAccessIssuedAtMs: number;
}

export interface RefreshTokenRecord {
  readonly chain: Chain;
  readonly expiresAtMs: number;
}

export interface AccessTokenRecord {
  readonly pair: Pair;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
}

export interface CodeRecord {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly user: User;
  readonly expiresAtMs: number;
  used: boolean;
}

/** A change of a user's divisions at runtime; at least one field. */
export interface UserDivisionsChange {
  division?: number;
  divisions?: readonly number[];
}

export interface IssuedTokens {
  accessToken: string;
  refreshToken: string;
}

/** The stats key of a pair, documented as `clientId/username`. */
export function pairKey(clientId: string, username: string): string {
  return `${clientId}/${username}`;
}

export function publicUser({ password: _password, totpSecret: _totpSecret, ...visible }: User): PublicUser {
  return visible;
}

/**
 * Apps, users, codes, chains and tokens, in memory. Token records are kept forever: a
 * rotated-away refresh token must still be recognised (to answer "Old refresh token used."
 * and to charge the error limit to its user) long after it died.
 */
export class SimState {
  private readonly apps = new Map<string, App>();
  private readonly users = new Map<string, User>();
  private readonly pairs = new Map<string, Pair>();
  private readonly codes = new Map<string, CodeRecord>();
  private readonly refreshTokens = new Map<string, RefreshTokenRecord>();
  private readonly accessTokens = new Map<string, AccessTokenRecord>();

  constructor(
    private readonly lifetimes: Lifetimes,
    private readonly tokenStyle: TokenStyle = TokenStyle.Short,
  ) {}

  addApp(spec: AppSpec): App {
    if (this.apps.has(spec.clientId)) {
      throw new ValidationError(`app "${spec.clientId}" already exists`);
    }
    const app: App = { ...spec, redirectUris: [...spec.redirectUris] };
    this.apps.set(app.clientId, app);
    return app;
  }

  addUser(spec: UserSpec): User {
    if (this.users.has(spec.username)) {
      throw new ValidationError(`user "${spec.username}" already exists`);
    }
    const userId = (spec.userId ?? randomUUID()).toLowerCase();
    if ([...this.users.values()].some((user) => user.userId === userId)) {
      throw new ValidationError(`a user with userId ${userId} already exists`);
    }
    const user: User = {
      userId,
      username: spec.username,
      password: spec.password,
      totpSecret: spec.totpSecret,
      division: spec.division ?? spec.divisions?.[0] ?? DEFAULT_DIVISION,
      divisions: [...(spec.divisions ?? [spec.division ?? DEFAULT_DIVISION])].sort((a, b) => a - b),
      fullName: spec.fullName ?? spec.username,
      email: spec.email ?? (spec.username.includes("@") ? spec.username : `${spec.username}@example.com`),
    };
    this.users.set(user.username, user);
    return user;
  }

  /**
   * The user opened another company, or was given or lost access to some: `division` becomes
   * its `CurrentDivision`, `divisions` what it can open. Given `divisions` alone, a current
   * division no longer among them moves to the first of them. Codes, chains and tokens keep
   * pointing at the same user, so every later answer shows the change.
   */
  setUserDivisions(username: string, change: UserDivisionsChange): User {
    const user = this.users.get(username);
    if (user === undefined) {
      throw new ValidationError(`user "${username}" does not exist`);
    }
    const divisions = change.divisions ? [...change.divisions].sort((a, b) => a - b) : user.divisions;
    const division =
      change.division ??
      (divisions.includes(user.division) ? user.division : (divisions[0] ?? user.division));
    if (!divisions.includes(division)) {
      throw new ValidationError(
        `user "${username}" cannot open division ${division}; give "divisions" including it`,
      );
    }
    user.division = division;
    user.divisions = divisions;
    return user;
  }

  app(clientId: string | undefined): App | undefined {
    return clientId === undefined ? undefined : this.apps.get(clientId);
  }

  /** User names are compared exactly, as everywhere in the simulator. */
  user(username: string): User | undefined {
    return this.users.get(username);
  }

  /** As if the user had logged in and consented: a single-use code bound to app and redirect URI. */
  issueCode(request: AuthorizeRequest, nowMs: number): string {
    const app = this.apps.get(request.clientId);
    if (app === undefined) {
      throw new ValidationError(`authorize: unknown clientId "${request.clientId}"`);
    }
    const user = this.users.get(request.username);
    if (user === undefined) {
      throw new ValidationError(`authorize: unknown username "${request.username}"`);
    }
    if (!app.redirectUris.includes(request.redirectUri)) {
      throw new ValidationError(`authorize: redirectUri is not registered for "${app.clientId}"`);
    }
    const code = newAuthorizationCode();
    this.codes.set(code, {
      clientId: app.clientId,
      redirectUri: request.redirectUri,
      user,
      expiresAtMs: nowMs + CODE_TTL_MS,
      used: false,
    });
    return code;
  }

  code(code: string | undefined): CodeRecord | undefined {
    return code === undefined ? undefined : this.codes.get(code);
  }

  refreshToken(token: string | undefined): RefreshTokenRecord | undefined {
    return token === undefined ? undefined : this.refreshTokens.get(token);
  }

  accessToken(token: string | undefined): AccessTokenRecord | undefined {
    return token === undefined ? undefined : this.accessTokens.get(token);
  }

  pair(clientId: string, user: User): Pair {
    const key = pairKey(clientId, user.username);
    let pair = this.pairs.get(key);
    if (pair === undefined) {
      pair = { key, clientId, user, chainsStarted: 0, chain: undefined, newestAccessToken: undefined };
      this.pairs.set(key, pair);
    }
    return pair;
  }

  allPairs(): IterableIterator<Pair> {
    return this.pairs.values();
  }

  /** A successful code exchange: a NEW chain at generation 1 replaces the pair's previous one. */
  startChain(pair: Pair, nowMs: number): IssuedTokens {
    const chain: Chain = { pair, generation: 1, refreshToken: "", lastAccessIssuedAtMs: nowMs };
    pair.chain = chain;
    pair.chainsStarted += 1;
    return {
      accessToken: this.issueAccessToken(pair, nowMs),
      refreshToken: this.issueRefreshToken(chain, nowMs),
    };
  }

  /** A successful refresh: new access and refresh token; the old refresh token dies. */
  refresh(chain: Chain, nowMs: number): IssuedTokens {
    chain.generation += 1;
    chain.lastAccessIssuedAtMs = nowMs;
    return {
      accessToken: this.issueAccessToken(chain.pair, nowMs),
      refreshToken: this.issueRefreshToken(chain, nowMs),
    };
  }

  /**
   * The implicit grant: an access token like any other, but no refresh token. The pair's chain
   * is left as it is: an implicit login does not end the user's refresh-token chain. It is the
   * pair's newest access token, which matters only when old access tokens are revoked (variant).
   */
  issueImplicitAccessToken(pair: Pair, nowMs: number): string {
    return this.issueAccessToken(pair, nowMs);
  }

  /**
   * Makes the pair's live refresh token `ageMs` old at `nowMs`: it expires when a token issued
   * then would (`refreshTtlMs` after). Nothing else changes: not the chain, its generation, nor
   * the too-early rule, which counts from the last access token.
   * @returns when the token expires now (epoch ms)
   * @throws ValidationError when the pair has no chain
   */
  setRefreshTokenAge(pair: Pair, ageMs: number, nowMs: number): number {
    const chain = pair.chain;
    const record = chain && this.refreshTokens.get(chain.refreshToken);
    if (chain === undefined || record === undefined) {
      throw new ValidationError(`refresh token age: "${pair.key}" has no chain`);
    }
    const expiresAtMs = nowMs - ageMs + this.lifetimes.refreshTtlMs;
    this.refreshTokens.set(chain.refreshToken, { ...record, expiresAtMs });
    return expiresAtMs;
  }

  /** Rotates the refresh token alone (the too-early-carries-a-refresh-token variant). */
  rotateRefreshToken(chain: Chain, nowMs: number): string {
    chain.generation += 1;
    return this.issueRefreshToken(chain, nowMs);
  }

  private issueAccessToken(pair: Pair, nowMs: number): string {
    const token = newAccessToken(this.tokenStyle);
    this.accessTokens.set(token, {
      pair,
      issuedAtMs: nowMs,
      expiresAtMs: nowMs + this.lifetimes.accessTtlMs,
    });
    pair.newestAccessToken = token;
    return token;
  }

  private issueRefreshToken(chain: Chain, nowMs: number): string {
    const token = newRefreshToken(this.tokenStyle);
    this.refreshTokens.set(token, { chain, expiresAtMs: nowMs + this.lifetimes.refreshTtlMs });
    chain.refreshToken = token;
    return token;
  }
}
