import { describe, expect, it } from "vitest";
import { ValidationError } from "../../lib/errors.js";
import { callbackUrlFor, connectUrlOf, normalizeConnectUrl } from "../../lib/onboarding/connect-url.js";

describe("normalizeConnectUrl", () => {
  it("returns the origin of a Function URL, trailing slash dropped", () => {
    expect(normalizeConnectUrl("https://Abc.lambda-url.eu-west-1.on.aws/", false)).toBe(
      "https://abc.lambda-url.eu-west-1.on.aws",
    );
  });

  it.each([
    ["plain http", "http://connect.example.com", false],
    ["http on loopback without allowLoopback", "http://127.0.0.1:8080", false],
    ["a path", "https://connect.example.com/onboarding", false],
    ["a query", "https://connect.example.com/?x=1", false],
    ["credentials", "https://user:pw@connect.example.com", false],
    ["not a URL", "connect.example.com", false],
  ])("refuses %s", (_what, raw, allowLoopback) => {
    expect(() => normalizeConnectUrl(raw, allowLoopback)).toThrow(ValidationError);
  });

  it("admits http on loopback when allowed (local runs)", () => {
    expect(normalizeConnectUrl("http://127.0.0.1:8080", true)).toBe("http://127.0.0.1:8080");
  });
});

describe("connectUrlOf", () => {
  it("derives the connect URL from a <origin>/callback redirect URI, and nothing from another form", () => {
    expect(connectUrlOf({ redirectUri: "https://abc.lambda-url.eu-west-1.on.aws/callback" })).toBe(
      "https://abc.lambda-url.eu-west-1.on.aws",
    );
    expect(connectUrlOf({ redirectUri: "https://example.com/oauth/callback" })).toBeUndefined();
    expect(connectUrlOf({ redirectUri: "https://example.com/callback?x=1" })).toBeUndefined();
    expect(callbackUrlFor("https://example.com/")).toBe("https://example.com/callback");
  });
});
