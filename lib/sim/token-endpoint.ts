import {
  dailyTokenCapReached,
  invalidChainId,
  invalidClient,
  invalidGrant,
  invalidRequest,
  obsoletedRefreshToken,
  oldRefreshToken,
  refreshTokenExpired,
  tokensIssued,
  tooEarly,
} from "./exact-answers.js";
import type { PreparedRequest } from "./exact-pipeline.js";
import type { Answer, RequestBody } from "./http.js";
import type { Simulation } from "./simulation.js";
import { type App, pairKey, type User } from "./state.js";
import { TokenOutcome } from "./stats.js";
import { dayEndMs } from "./token-cap.js";

type Processed = ReturnType<PreparedRequest<"token">["process"]>;

const REQUIRED_PARAMS = {
  authorization_code: ["code", "redirect_uri", "client_id", "client_secret"],
  refresh_token: ["refresh_token", "client_id", "client_secret"],
} as const;
type GrantType = keyof typeof REQUIRED_PARAMS;

const KNOWN_PARAMS = ["grant_type", "code", "redirect_uri", "client_id", "client_secret", "refresh_token"];

function isGrantType(value: string): value is GrantType {
  return Object.hasOwn(REQUIRED_PARAMS, value);
}

function isFormContentType(contentType: string | undefined): boolean {
  return contentType?.split(";")[0]?.trim().toLowerCase() === "application/x-www-form-urlencoded";
}

function rejected(answer: Answer, outcome: TokenOutcome): Processed {
  return { answer, outcome };
}

/**
 * `POST /api/oauth2/token`. Parsing happens first so that faults and the error limit know the
 * client and user; `process()` then applies Exact's rules in this order: form well-formed,
 * grant type, required parameters, client credentials, the daily token cap (variant), then the
 * grant itself.
 */
export function prepareTokenRequest(
  sim: Simulation,
  contentType: string | undefined,
  body: RequestBody,
): PreparedRequest<"token"> {
  const form =
    isFormContentType(contentType) && !body.tooLarge
      ? new URLSearchParams(body.bytes.toString("utf8"))
      : undefined;
  const clientId = form?.get("client_id") ?? undefined;
  const user =
    sim.state.refreshToken(form?.get("refresh_token") ?? undefined)?.chain.pair.user ??
    sim.state.code(form?.get("code") ?? undefined)?.user;

  return {
    endpoint: "token",
    clientId,
    user,
    process(): Processed {
      if (body.tooLarge) {
        return rejected(invalidRequest("The request body is too large."), TokenOutcome.invalidRequest);
      }
      if (form === undefined) {
        return rejected(
          invalidRequest("Content-Type must be application/x-www-form-urlencoded."),
          TokenOutcome.invalidRequest,
        );
      }
      const repeated = KNOWN_PARAMS.find((name) => form.getAll(name).length > 1);
      if (repeated !== undefined) {
        return rejected(
          invalidRequest(`Parameter ${repeated} given more than once.`),
          TokenOutcome.invalidRequest,
        );
      }
      const grantType = form.get("grant_type");
      if (!grantType) {
        return rejected(invalidRequest("Missing parameter: grant_type."), TokenOutcome.invalidRequest);
      }
      if (!isGrantType(grantType)) {
        return rejected(invalidRequest("Unsupported grant_type."), TokenOutcome.invalidRequest);
      }
      const missing = REQUIRED_PARAMS[grantType].find((name) => !form.get(name));
      if (missing !== undefined) {
        return rejected(invalidRequest(`Missing parameter: ${missing}.`), TokenOutcome.invalidRequest);
      }
      const app = sim.state.app(clientId);
      if (app === undefined) {
        return rejected(invalidClient("Unknown client_id."), TokenOutcome.invalidClient);
      }
      if (app.clientSecret !== form.get("client_secret")) {
        return rejected(invalidClient("Invalid client_secret."), TokenOutcome.invalidClient);
      }
      const capped = user === undefined ? undefined : chargeDailyCall(sim, app, user);
      if (capped !== undefined) {
        return capped;
      }
      return grantType === "authorization_code"
        ? exchangeCode(sim, app, form.get("code") ?? "", form.get("redirect_uri") ?? "")
        : refresh(sim, app, form.get("refresh_token") ?? "");
    },
  };
}

/**
 * Counts a call of the (app, user) pair toward today's token calls, or refuses it when the
 * `dailyTokenCap` variant is on and the day's calls are used up (see token-cap.ts).
 */
function chargeDailyCall(sim: Simulation, app: App, user: User): Processed | undefined {
  const { variants } = sim;
  const key = pairKey(app.clientId, user.username);
  const nowMs = sim.clock.nowMs();
  if (variants.dailyTokenCap && sim.dailyTokenCalls.callsToday(key, nowMs) >= variants.dailyTokenCapPerDay) {
    return rejected(
      dailyTokenCapReached(variants.dailyTokenCapPerDay, dayEndMs(nowMs), nowMs),
      TokenOutcome.dailyCap,
    );
  }
  sim.dailyTokenCalls.record(key, nowMs);
  return undefined;
}

/** Rule 1: a code is single-use, valid 3 minutes, bound to client ID and redirect URI. */
function exchangeCode(sim: Simulation, app: App, code: string, redirectUri: string): Processed {
  const record = sim.state.code(code);
  const nowMs = sim.clock.nowMs();
  if (record === undefined || record.clientId !== app.clientId) {
    return rejected(invalidGrant("Unknown authorization code."), TokenOutcome.invalidGrant);
  }
  if (record.used) {
    return rejected(invalidGrant("The authorization code was already used."), TokenOutcome.invalidGrant);
  }
  if (nowMs >= record.expiresAtMs) {
    return rejected(invalidGrant("The authorization code expired."), TokenOutcome.invalidGrant);
  }
  if (record.redirectUri !== redirectUri) {
    return rejected(
      invalidGrant("redirect_uri does not match the authorization request."),
      TokenOutcome.invalidGrant,
    );
  }
  record.used = true;
  const tokens = sim.state.startChain(sim.state.pair(app.clientId, record.user), nowMs);
  return { answer: tokensIssued(tokens, sim.settings.accessTtlSeconds), outcome: TokenOutcome.codeExchanged };
}

/** Rules 2 to 5 and the variants of rule 10. */
function refresh(sim: Simulation, app: App, refreshToken: string): Processed {
  const { variants } = sim;
  const record = sim.state.refreshToken(refreshToken);
  const nowMs = sim.clock.nowMs();
  if (record === undefined || record.chain.pair.clientId !== app.clientId) {
    return rejected(invalidGrant("Unknown refresh token."), TokenOutcome.invalidGrant);
  }
  const { chain } = record;
  const oldTokenAnswer = variants.oldTokenAs400Obsoleted ? obsoletedRefreshToken() : oldRefreshToken();
  if (chain.pair.chain !== chain) {
    return rejected(
      variants.supersededAsInvalidGrant ? invalidChainId() : oldTokenAnswer,
      TokenOutcome.superseded,
    );
  }
  if (chain.refreshToken !== refreshToken) {
    return rejected(oldTokenAnswer, TokenOutcome.oldToken);
  }
  if (nowMs >= record.expiresAtMs) {
    return rejected(refreshTokenExpired(record.expiresAtMs, nowMs), TokenOutcome.expired);
  }
  if (nowMs - chain.lastAccessIssuedAtMs < sim.settings.refreshAfterSeconds * 1000) {
    // The current tokens stay valid; only the carrying variant rotates the refresh token.
    const carried = variants.tooEarlyCarriesRefreshToken
      ? sim.state.rotateRefreshToken(chain, nowMs)
      : undefined;
    return rejected(tooEarly(variants.tooEarlyAs401 ? 401 : 400, carried), TokenOutcome.tooEarly);
  }
  const tokens = sim.state.refresh(chain, nowMs);
  return { answer: tokensIssued(tokens, sim.settings.accessTtlSeconds), outcome: TokenOutcome.refreshed };
}
