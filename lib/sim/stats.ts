import type { Endpoint } from "./faults.js";

/**
 * Outcomes shared by the token and Me endpoints: blocked by the error limit, answered by a
 * script (whether or not it processed the request), or hit by a fault.
 */
const SHARED_OUTCOMES = {
  errorLimited: "error_limited",
  scripted: "scripted",
  faultStatus: "fault_status",
  faultRateLimit: "fault_rate_limit",
  faultReset: "fault_reset",
  faultRotateThenDrop: "fault_rotate_then_drop",
} as const;

/**
 * One outcome per token request. `old_token` is a refresh token rotated away inside the current
 * chain, `superseded` one of a chain replaced by a new authorization; `invalid_grant` covers bad
 * codes and unknown refresh tokens; `daily_cap` a request refused by the daily token cap (variant).
 */
export const TokenOutcome = {
  codeExchanged: "code_exchanged",
  refreshed: "refreshed",
  tooEarly: "too_early",
  oldToken: "old_token",
  superseded: "superseded",
  expired: "expired",
  invalidClient: "invalid_client",
  invalidRequest: "invalid_request",
  invalidGrant: "invalid_grant",
  dailyCap: "daily_cap",
  ...SHARED_OUTCOMES,
} as const;
export type TokenOutcome = (typeof TokenOutcome)[keyof typeof TokenOutcome];

export const MeOutcome = {
  ok: "ok",
  unauthorized: "unauthorized",
  ...SHARED_OUTCOMES,
} as const;
export type MeOutcome = (typeof MeOutcome)[keyof typeof MeOutcome];

/**
 * One outcome per call of the REST API (`/api/v1/{division}/…`): `unauthorized` a token that is
 * known but expired or revoked (an unknown one has no app and counts in the totals only),
 * `no_division_access` a division the user cannot open, `bad_request` a query option the
 * simulator cannot read, `minutely_limited` and `daily_limited` the API rate limits.
 */
export const ApiOutcome = {
  ok: "ok",
  unauthorized: "unauthorized",
  noDivisionAccess: "no_division_access",
  badRequest: "bad_request",
  minutelyLimited: "minutely_limited",
  dailyLimited: "daily_limited",
  /** Answered by a script (`"endpoint": "api"`): nothing processed, nothing charged. */
  scripted: "scripted",
} as const;
export type ApiOutcome = (typeof ApiOutcome)[keyof typeof ApiOutcome];

/**
 * One outcome per credential check at B2C's `SelfAsserted` (a request turned away for its csrf
 * or transaction never reaches the check and is not counted). `totp_reused` is a right code of
 * a 30 s step the user already logged in with; `locked` an attempt while the user is locked,
 * whatever the credentials.
 */
export const LoginOutcome = {
  success: "success",
  badPassword: "bad_password",
  badTotp: "bad_totp",
  totpReused: "totp_reused",
  locked: "locked",
  unknownUser: "unknown_user",
} as const;
export type LoginOutcome = (typeof LoginOutcome)[keyof typeof LoginOutcome];

/** The grants `/api/oauth2/auth` hands out, by `response_type`. */
export type ResponseType = "code" | "token";

export interface OutcomeByEndpoint {
  token: TokenOutcome;
  me: MeOutcome;
}

/** Token-request counters; `issued` is `code_exchanged` + `refreshed`. */
export type TokenRequestCounts = Record<TokenOutcome | "issued", number>;
export type MeRequestCounts = Record<MeOutcome, number>;
export type ApiRequestCounts = Record<ApiOutcome, number>;
export type LoginCounts = Record<LoginOutcome, number>;
/** Redirects with a code or a token from `/api/oauth2/auth`; `/_sim/authorize` does not count. */
export type AuthorizationCounts = Record<ResponseType, number>;

export interface ChainStats {
  /** Generation of the pair's current chain; 0 before the first code exchange. */
  generation: number;
  /**
   * First 16 hex digits of the SHA-256 of the one refresh token Exact would accept now (the
   * broker stores the same hash as `refreshHash`), or null before the first code exchange. Lets
   * a test tell whether what the broker stored is the live chain; the token itself is never shown.
   */
  liveRefreshHash: string | null;
  chainsStarted: number;
  tokenRequests: TokenRequestCounts;
  meRequests: MeRequestCounts;
  authorizations: AuthorizationCounts;
}

/**
 * `GET /_sim/stats`. `chains` is keyed `clientId/username`, `logins` by the user name typed at
 * the sign-in (unknown names included, so a typo shows), `api` by `clientId/division` (the
 * key of Exact's API rate limits).
 */
export interface SimulatorStats {
  chains: Record<string, ChainStats>;
  logins: Record<string, LoginCounts>;
  api: Record<string, ApiRequestCounts>;
  totals: {
    tokenRequests: TokenRequestCounts;
    meRequests: MeRequestCounts;
    apiRequests: ApiRequestCounts;
    chainsStarted: number;
    logins: LoginCounts;
    authorizations: AuthorizationCounts;
  };
}

export interface PairSummary {
  key: string;
  generation: number;
  liveRefreshHash: string | null;
  chainsStarted: number;
}

interface Counters {
  token: TokenRequestCounts;
  me: MeRequestCounts;
  authorizations: AuthorizationCounts;
}

function zeros<K extends string>(keys: K[]): Record<K, number> {
  return Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
}

function zeroCounters(): Counters {
  return {
    token: zeros(["issued", ...Object.values(TokenOutcome)]),
    me: zeros(Object.values(MeOutcome)),
    authorizations: zeros(["code", "token"]),
  };
}

/**
 * Counts every request to the Exact-facing endpoints by outcome, per pair and in total. A
 * request whose app or user is unknown (a garbage token, a missing client_id) has no pair and
 * is counted in the totals only. The login's credential checks are counted per user name, its
 * authorizations per pair and REST API calls per (app, division), in total too.
 */
export class StatsRecorder {
  private readonly totals = zeroCounters();
  private readonly perPair = new Map<string, Counters>();
  private readonly loginTotals = zeros(Object.values(LoginOutcome));
  private readonly perUsername = new Map<string, LoginCounts>();
  private readonly apiTotals = zeros(Object.values(ApiOutcome));
  private readonly perAppDivision = new Map<string, ApiRequestCounts>();

  /** A credential check; an empty user name counts in the totals only. */
  recordLogin(username: string, outcome: LoginOutcome): void {
    this.loginTotals[outcome] += 1;
    if (username === "") {
      return;
    }
    let counts = this.perUsername.get(username);
    if (counts === undefined) {
      counts = zeros(Object.values(LoginOutcome));
      this.perUsername.set(username, counts);
    }
    counts[outcome] += 1;
  }

  /** A REST API call; `appDivisionKey` is `clientId/division`, undefined when the app is unknown. */
  recordApi(outcome: ApiOutcome, appDivisionKey: string | undefined): void {
    this.apiTotals[outcome] += 1;
    if (appDivisionKey === undefined) {
      return;
    }
    let counts = this.perAppDivision.get(appDivisionKey);
    if (counts === undefined) {
      counts = zeros(Object.values(ApiOutcome));
      this.perAppDivision.set(appDivisionKey, counts);
    }
    counts[outcome] += 1;
  }

  recordAuthorization(pairKey: string, responseType: ResponseType): void {
    this.totals.authorizations[responseType] += 1;
    this.countersOf(pairKey).authorizations[responseType] += 1;
  }

  record<E extends Endpoint>(endpoint: E, outcome: OutcomeByEndpoint[E], pairKey: string | undefined): void {
    const targets = [this.totals];
    if (pairKey !== undefined) {
      targets.push(this.countersOf(pairKey));
    }
    for (const counters of targets) {
      const counts: Record<string, number> = counters[endpoint];
      counts[outcome] = (counts[outcome] ?? 0) + 1;
      if (outcome === TokenOutcome.codeExchanged || outcome === TokenOutcome.refreshed) {
        counts.issued = (counts.issued ?? 0) + 1;
      }
    }
  }

  view(pairs: Iterable<PairSummary>): SimulatorStats {
    const chains: Record<string, ChainStats> = {};
    let chainsStarted = 0;
    for (const pair of pairs) {
      const counters = this.countersOf(pair.key);
      chains[pair.key] = {
        generation: pair.generation,
        liveRefreshHash: pair.liveRefreshHash,
        chainsStarted: pair.chainsStarted,
        tokenRequests: { ...counters.token },
        meRequests: { ...counters.me },
        authorizations: { ...counters.authorizations },
      };
      chainsStarted += pair.chainsStarted;
    }
    const logins = Object.fromEntries([...this.perUsername].map(([name, counts]) => [name, { ...counts }]));
    const api = Object.fromEntries([...this.perAppDivision].map(([key, counts]) => [key, { ...counts }]));
    return {
      chains,
      logins,
      api,
      totals: {
        tokenRequests: { ...this.totals.token },
        meRequests: { ...this.totals.me },
        apiRequests: { ...this.apiTotals },
        chainsStarted,
        logins: { ...this.loginTotals },
        authorizations: { ...this.totals.authorizations },
      },
    };
  }

  private countersOf(pairKey: string): Counters {
    let counters = this.perPair.get(pairKey);
    if (counters === undefined) {
      counters = zeroCounters();
      this.perPair.set(pairKey, counters);
    }
    return counters;
  }
}
