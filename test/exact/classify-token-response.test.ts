import { describe, expect, it } from "vitest";
import {
  classifyTokenResponse,
  countsAsExactError,
  gatewayOutage,
  retryAfterFrom,
} from "../../lib/exact/classify-token-response.js";
import type { HttpOutcome } from "../../lib/exact/http.js";

const NOW = Date.parse("2026-11-26T12:00:00Z");

function answer(status: number, body: unknown, headers: Record<string, string> = {}): HttpOutcome {
  return {
    kind: "response",
    status,
    headers: new Headers(headers),
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
}

const TOKENS = {
  access_token: "simAT!abc",
  token_type: "bearer",
  expires_in: "600",
  refresh_token: "simRT!def",
};
const TOO_EARLY = {
  error: "access_denied",
  error_description: "Rate limit exceeded: access_token not expired",
};
const REASON = { Reason: "TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired" };

describe("classifyTokenResponse", () => {
  it("reads a success body, with expires_in as a string", () => {
    const outcome = classifyTokenResponse(answer(200, TOKENS), NOW);
    expect(outcome).toEqual({
      kind: "tokens",
      rotated: { accessToken: "simAT!abc", refreshToken: "simRT!def", expiresInSeconds: 600 },
    });
  });

  it("accepts a numeric expires_in and Bearer with a capital B", () => {
    const outcome = classifyTokenResponse(
      answer(200, { ...TOKENS, expires_in: 600, token_type: "Bearer" }),
      NOW,
    );
    expect(outcome.kind).toBe("tokens");
  });

  it.each([
    ["400 with the Reason header", answer(400, TOO_EARLY, REASON)],
    ["401 with the Reason header", answer(401, TOO_EARLY, REASON)],
    [
      "401 in Exact's own wording, no header",
      answer(401, { error: "access_denied", error_description: "Access Token not expired" }),
    ],
  ])("never reads too-early as a dead chain: %s", (_name, response) => {
    const outcome = classifyTokenResponse(response, NOW);
    expect(outcome.kind).toBe("too_early");
    expect(countsAsExactError(outcome)).toBe(true);
  });

  it("keeps a refresh token carried by a too-early answer", () => {
    const outcome = classifyTokenResponse(
      answer(400, { ...TOO_EARLY, refresh_token: "simRT!new" }, REASON),
      NOW,
    );
    expect(outcome).toMatchObject({ kind: "too_early", rotated: { refreshToken: "simRT!new" } });
  });

  it.each([
    [
      "401 Old refresh token used.",
      answer(401, { error: "unauthorized_client", error_description: "Old refresh token used." }),
      "old_token",
    ],
    [
      "400 obsoleted (Invantive)",
      answer(400, {
        error: "invalid_request",
        error_description: "An obsoleted refresh token can not be used.",
      }),
      "old_token",
    ],
    [
      "400 refresh token expired",
      answer(400, {
        error: "invalid_request",
        error_description:
          "The refresh token expired at 11/3/2021 2:50:46 PM and it is now 7/31/2022 7:45:12 PM.",
      }),
      "refresh_expired",
    ],
    [
      "400 invalid chainId",
      answer(400, {
        error: "invalid_grant",
        error_description: "Token is not allowed, because of invalid or empty chainId",
      }),
      "invalid_chain",
    ],
  ])("reads %s as a dead chain", (_name, response, reason) => {
    expect(classifyTokenResponse(response, NOW)).toMatchObject({ kind: "chain_dead", reason });
  });

  it("reads invalid_client as a rejected client, not a dead chain", () => {
    expect(classifyTokenResponse(answer(401, { error: "invalid_client" }), NOW).kind).toBe("client_rejected");
  });

  it("reads 429 with Retry-After, with X-RateLimit reset headers, and bare", () => {
    expect(classifyTokenResponse(answer(429, "", { "Retry-After": "7" }), NOW)).toMatchObject({
      kind: "rate_limited",
      retryAfterSeconds: 7,
    });
    expect(
      classifyTokenResponse(answer(429, "", { "X-RateLimit-Minutely-Reset": String(NOW + 42_000) }), NOW),
    ).toMatchObject({ kind: "rate_limited", retryAfterSeconds: 42 });
    expect(classifyTokenResponse(answer(429, ""), NOW)).toMatchObject({
      kind: "rate_limited",
      retryAfterSeconds: 60,
    });
  });

  it("reads 503 as Exact overloaded: not processed, not an error Exact counts", () => {
    const outcome = classifyTokenResponse(answer(503, "<html>oops</html>", { "Retry-After": "30" }), NOW);
    expect(outcome).toMatchObject({
      kind: "unavailable",
      sent: true,
      cause: "overloaded",
      retryAfterSeconds: 30,
    });
    expect(countsAsExactError(outcome)).toBe(false);
  });

  it.each([500, 502, 504])(
    "reads %i as an unknown outcome: Exact may have processed it (one probe)",
    (status) => {
      const outcome = classifyTokenResponse(
        answer(status, '{"fault":{"faultstring":"ExtractVariables"}}'),
        NOW,
      );
      expect(outcome).toMatchObject({ kind: "outcome_unknown", status });
    },
  );

  it("reads a failure before connecting as not sent, and one after as outcome unknown", () => {
    expect(
      classifyTokenResponse({ kind: "not_sent", cause: new Error("connect ECONNREFUSED") }, NOW),
    ).toMatchObject({
      kind: "unavailable",
      sent: false,
    });
    expect(classifyTokenResponse({ kind: "unknown", cause: new Error("socket hang up") }, NOW).kind).toBe(
      "outcome_unknown",
    );
  });

  it("reads a bare 4xx page as maintenance, which Exact does not count, and an unknown OAuth error as unrecognised", () => {
    const page = classifyTokenResponse(answer(400, "<html><body>Maintenance</body></html>"), NOW);
    const text = classifyTokenResponse(answer(403, "Forbidden"), NOW);
    const unknown = classifyTokenResponse(answer(400, { error: "temporarily_unavailable" }), NOW);

    expect(page).toMatchObject({ kind: "unavailable", sent: true, cause: "maintenance" });
    expect(text).toMatchObject({ kind: "unavailable", cause: "maintenance" });
    expect(countsAsExactError(page)).toBe(false);
    expect(unknown).toMatchObject({ kind: "unavailable", cause: "unrecognised" });
    expect(countsAsExactError(unknown)).toBe(true);
  });

  it("reads a 200 without tokens as an unknown outcome, and a 200 with an OAuth error by that error", () => {
    expect(classifyTokenResponse(answer(200, "not json"), NOW)).toMatchObject({ kind: "outcome_unknown" });
    expect(classifyTokenResponse(answer(200, { error: "invalid_grant" }), NOW)).toMatchObject({
      kind: "chain_dead",
      reason: "invalid_chain",
    });
  });

  it("reads a success without expires_in as Exact's documented 600 s", () => {
    const { expires_in: _drop, ...noExpiry } = TOKENS;
    expect(classifyTokenResponse(answer(200, noExpiry), NOW)).toMatchObject({
      kind: "tokens",
      rotated: { expiresInSeconds: 600 },
    });
  });

  it("reads Application Scope Violated as the app rejected, like invalid_client", () => {
    expect(
      classifyTokenResponse(
        answer(403, { error: "unauthorized_client", error_description: "Application Scope Violated" }),
        NOW,
      ),
    ).toMatchObject({ kind: "client_rejected", scope: true });
  });

  it.each(["BlockedUser", "InactiveUser", "LicenseExpired", "NoDivisionAccess: user has no access"])(
    "reads a 403 with Reason %s as the user refused (counted), not an odd answer",
    (reason) => {
      const outcome = classifyTokenResponse(answer(403, { error: "access_denied" }, { Reason: reason }), NOW);
      expect(outcome).toMatchObject({ kind: "user_blocked", reason: reason.split(":")[0], status: 403 });
      expect(countsAsExactError(outcome)).toBe(true);
    },
  );

  it("reads 502 and 504 without tokens as an outage of the app besides an unknown outcome; 500 not", () => {
    const read = (status: number) => classifyTokenResponse(answer(status, "<html>Bad Gateway</html>"), NOW);
    expect([500, 502, 504].map((status) => gatewayOutage(read(status)))).toEqual([false, true, true]);
  });

  it("reads a 5xx that carried a refresh token as processed, the pair kept", () => {
    const outcome = classifyTokenResponse(
      answer(500, { fault: { faultstring: "ExtractVariables" }, ...TOKENS }),
      NOW,
    );
    expect(outcome).toMatchObject({
      kind: "unavailable",
      cause: "server_error",
      rotated: { refreshToken: "simRT!def", accessToken: "simAT!abc", expiresInSeconds: 600 },
    });
    expect(gatewayOutage(outcome)).toBe(false);
  });

  it("keeps a refresh token found in any error body", () => {
    const outcome = classifyTokenResponse(answer(503, { refresh_token: "simRT!x" }), NOW);
    expect(outcome).toMatchObject({ kind: "unavailable", rotated: { refreshToken: "simRT!x" } });
  });
});

describe("retryAfterFrom", () => {
  it("reads an HTTP date", () => {
    expect(retryAfterFrom(new Headers({ "retry-after": new Date(NOW + 30_000).toUTCString() }), NOW)).toBe(
      30,
    );
  });
  it("is undefined without hints", () => {
    expect(retryAfterFrom(new Headers(), NOW)).toBeUndefined();
  });
});
