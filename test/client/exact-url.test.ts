import { describe, expect, it } from "vitest";
import { exactUrl } from "../../lib/client/exact-fetch.js";
import { type AccessToken, ValidationError } from "../../lib/client/index.js";

// A path relative to the division stays in it: `.` and `..` segments (which WHATWG URL resolves,
// percent-encoded too) are refused before any request, as are paths from /api/ that would leave it.

const token: AccessToken = {
  accessToken: "not-a-real-token",
  tokenType: "Bearer",
  expiresAt: "2026-11-26T12:10:00.000Z",
  generation: 1,
  baseUrl: "https://start.exactonline.nl",
  division: 123,
};

describe("exactUrl", () => {
  it.each([
    "crm/../../456/crm/Accounts",
    "crm/%2e%2e/%2E%2E/456/crm/Accounts",
    "crm/.%2e/x",
    "../current/Me",
    "./crm/Accounts",
    "crm\\..\\..\\456\\crm\\Accounts",
    "/api/v1/123/../../../x",
    "/api/%2e%2e/x",
  ])("refuses %j with ValidationError", (path) => {
    expect(() => exactUrl(token, path)).toThrow(ValidationError);
  });

  it.each([
    ["crm/Accounts?$filter=Name eq '../x'", "/api/v1/123/crm/Accounts"],
    ["crm/Accounts..old", "/api/v1/123/crm/Accounts..old"],
    ["/api/v1/current/Me", "/api/v1/current/Me"],
  ])("builds %j: dots in a query or inside a segment are no dot segments", (path, pathname) => {
    expect(exactUrl(token, path).pathname).toBe(pathname);
  });
});
