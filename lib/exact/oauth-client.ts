import { classifyTokenResponse, SCOPE_VIOLATED, type TokenOutcome } from "./classify-token-response.js";
import { type HttpSend, sendHttp } from "./http.js";

export interface ClientCredentials {
  readonly clientId: string;
  readonly clientSecret: string;
}

/** The Exact user behind an access token, from `GET /api/v1/current/Me`. */
export interface ExactMe {
  readonly userId: string;
  readonly userName: string;
  readonly division: number | null;
}

/** What `/api/v1/current/Me` answered. */
export type MeOutcome =
  | { readonly kind: "user"; readonly me: ExactMe }
  /**
   * A 4xx: Exact refused the token (401) or the user (403, with Exact's `Reason` header when sent).
   * `scopeViolated`: the body says "Application Scope Violated", a refusal of the app, not the user.
   */
  | {
      readonly kind: "refused";
      readonly status: number;
      readonly reason?: string;
      readonly scopeViolated?: true;
    }
  /**
   * 5xx, no answer, or a 200 without a user. `sent` is false when the request never reached
   * Exact (refused, DNS, TLS: lib/exact/http.ts `not_sent`), so Exact counted nothing.
   */
  | {
      readonly kind: "unavailable";
      readonly status?: number;
      readonly detail: string;
      readonly sent: boolean;
    };

/** What `GET /api/v1/{division}/system/Divisions?$top=1` answered: can the token's user open the division? */
export type DivisionOutcome =
  /** 200: the user can open the division. */
  | { readonly kind: "reachable" }
  /** A 4xx; 403 with `Reason: NoDivisionAccess` (or no Reason) is Exact's "this user cannot open that division". */
  | { readonly kind: "refused"; readonly status: number; readonly reason?: string }
  /** 5xx, no answer, or a status that says nothing about the division. */
  | { readonly kind: "unavailable"; readonly status?: number; readonly detail: string };

/** A `Reason` header is Exact's word (`BlockedUser`, …); kept short in case a proxy sends prose. */
const MAX_REASON_LENGTH = 64;

export interface OAuthClientOptions {
  readonly send?: HttpSend;
  readonly now?: () => number;
}

/**
 * Exact's OAuth endpoints. Deliberately no retry around the token POST: a resent refresh token
 * that Exact already rotated kills the chain (shared/exact-online.md, lesson 4). The caller
 * decides what to do with every outcome, under its lease.
 */
export class ExactOAuthClient {
  readonly #send: HttpSend;
  readonly #now: () => number;

  constructor(options: OAuthClientOptions = {}) {
    this.#send = options.send ?? sendHttp;
    this.#now = options.now ?? Date.now;
  }

  /** One refresh: `grant_type=refresh_token`. `timeoutMs` must end before the caller's lease. */
  async refresh(
    baseUrl: string,
    creds: ClientCredentials,
    refreshToken: string,
    timeoutMs: number,
  ): Promise<TokenOutcome> {
    return this.#token(
      baseUrl,
      {
        grant_type: "refresh_token",
        refresh_token: refreshToken,
        client_id: creds.clientId,
        client_secret: creds.clientSecret,
      },
      timeoutMs,
    );
  }

  /** Exchanges an authorization code; Exact starts a new chain for (client ID, user). */
  async exchangeCode(
    baseUrl: string,
    creds: ClientCredentials,
    code: string,
    redirectUri: string,
    timeoutMs: number,
  ): Promise<TokenOutcome> {
    return this.#token(
      baseUrl,
      {
        grant_type: "authorization_code",
        // Exact hands codes out URL-encoded (%21 for "!"); decoding a decoded code is harmless.
        code: safeDecode(code),
        redirect_uri: redirectUri,
        client_id: creds.clientId,
        client_secret: creds.clientSecret,
      },
      timeoutMs,
    );
  }

  /**
   * Who the access token belongs to: `GET /api/v1/current/Me`. Never throws for Exact's answers:
   * `refused` is a 4xx (it counts against Exact's error limit; a 403 carries Exact's `Reason`
   * header, e.g. `BlockedUser`), `unavailable` anything else that gave no user.
   */
  async me(baseUrl: string, accessToken: string, timeoutMs: number): Promise<MeOutcome> {
    const outcome = await this.#send({
      method: "GET",
      url: `${baseUrl}/api/v1/current/Me`,
      headers: { authorization: `Bearer ${accessToken}`, accept: "application/json" },
      timeoutMs,
    });
    if (outcome.kind !== "response") {
      return {
        kind: "unavailable",
        detail: `GET /api/v1/current/Me failed: ${outcome.cause.message}`,
        sent: outcome.kind !== "not_sent",
      };
    }
    const { status } = outcome;
    if (status >= 400 && status < 500) {
      const reason = outcome.headers.get("reason") ?? undefined;
      return {
        kind: "refused",
        status,
        ...(reason ? { reason: reason.slice(0, MAX_REASON_LENGTH) } : {}),
        ...(SCOPE_VIOLATED.test(outcome.body) ? { scopeViolated: true as const } : {}),
      };
    }
    const me = status === 200 ? parseMe(outcome.body) : undefined;
    return me
      ? { kind: "user", me }
      : {
          kind: "unavailable",
          status,
          detail: `GET /api/v1/current/Me answered HTTP ${status} without a user`,
          sent: true,
        };
  }

  /**
   * Whether the access token's user can open `division`: one row of
   * `GET /api/v1/{division}/system/Divisions` (the cheapest call scoped to a division). Never
   * throws for Exact's answers. The call counts against Exact's API limits of that division.
   */
  async divisionReachable(
    baseUrl: string,
    accessToken: string,
    division: number,
    timeoutMs: number,
  ): Promise<DivisionOutcome> {
    const path = `/api/v1/${division}/system/Divisions`;
    const outcome = await this.#send({
      method: "GET",
      url: `${baseUrl}${path}?$top=1`,
      headers: { authorization: `Bearer ${accessToken}`, accept: "application/json" },
      timeoutMs,
    });
    if (outcome.kind !== "response") {
      return { kind: "unavailable", detail: `GET ${path} failed: ${outcome.cause.message}` };
    }
    const { status } = outcome;
    if (status === 200) return { kind: "reachable" };
    if (status >= 400 && status < 500) {
      const reason = outcome.headers.get("reason") ?? undefined;
      return { kind: "refused", status, ...(reason ? { reason: reason.slice(0, MAX_REASON_LENGTH) } : {}) };
    }
    return { kind: "unavailable", status, detail: `GET ${path} answered HTTP ${status}` };
  }

  async #token(baseUrl: string, form: Record<string, string>, timeoutMs: number): Promise<TokenOutcome> {
    const outcome = await this.#send({
      method: "POST",
      url: `${baseUrl}/api/oauth2/token`,
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams(form).toString(),
      timeoutMs,
    });
    return classifyTokenResponse(outcome, this.#now());
  }
}

function safeDecode(code: string): string {
  try {
    return decodeURIComponent(code);
  } catch {
    return code;
  }
}

function parseMe(body: string): ExactMe | undefined {
  try {
    const parsed = JSON.parse(body) as { d?: { results?: Array<Record<string, unknown>> } };
    const user = parsed.d?.results?.[0];
    if (!user || typeof user.UserID !== "string") return undefined;
    return {
      userId: user.UserID,
      userName: typeof user.UserName === "string" ? user.UserName : "",
      division: typeof user.CurrentDivision === "number" ? user.CurrentDivision : null,
    };
  } catch {
    return undefined;
  }
}
