import { ParseError } from "@aws-lambda-powertools/parser";
import { describe, expect, it } from "vitest";
import {
  ConfigurationError,
  ConnectionNotFound,
  ExactUnavailable,
  ReauthRequired,
  SecretUnavailable,
  Throttled,
  ValidationError,
} from "../../lib/errors.js";
import { escapeHtml, failurePage, redirectAnswer, seededPage } from "../../lib/onboarding/connect-pages.js";
import { ConnectRefused, RefusalReason } from "../../lib/onboarding/connect-refused.js";

const SEEDED = {
  connectionId: "acme",
  exactUserId: "0f5a…",
  exactUserName: "jan@example.com",
  division: 424242,
  generation: 1,
};

describe("connect pages", () => {
  it("escapes everything HTML gives meaning to", () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe(
      "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;",
    );
  });

  it("names the user and division, escaped", () => {
    const page = seededPage({ ...SEEDED, exactUserName: "<img src=x onerror=alert(1)>" }, "acme");

    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("&lt;img src=x onerror=alert(1)&gt;");
    expect(page.body).not.toContain("<img");
    expect(page.body).toContain("division 424242");
  });

  it("says when Exact reports no current division", () => {
    expect(seededPage({ ...SEEDED, division: null }, "acme").body).toContain("no current division");
  });

  it("sets the no-store, HTML and no-referrer headers on every answer, including the redirect", () => {
    for (const answer of [
      seededPage(SEEDED, "acme"),
      redirectAnswer("https://start.exactonline.nl/x?a=1&b=2"),
    ]) {
      expect(answer.headers).toMatchObject({
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
      });
    }
    expect(redirectAnswer("https://start.exactonline.nl/x?a=1&b=2").body).toContain("x?a=1&amp;b=2");
  });

  it.each([
    [new ConnectRefused(RefusalReason.Expired, "link", "this connect link expired"), 410],
    [new ConnectRefused(RefusalReason.Used, "state", "used before"), 410],
    [new ConnectRefused(RefusalReason.BadSignature, "link", "not valid"), 400],
    [new ConnectRefused(RefusalReason.RedirectMismatch, "link", "wrong redirect URI"), 409],
    [new ParseError("bad event"), 400],
    [new ValidationError("Exact refused the authorization code"), 400],
    [new ConnectionNotFound('connection "x" does not exist'), 410],
    [new ReauthRequired("Exact rejected the client ID or secret"), 502],
    [new ExactUnavailable("Exact token endpoint unavailable", { retryAfterSeconds: 5 }), 503],
    [new Throttled("rate-limited", { retryAfterSeconds: 60 }), 503],
    [new ConfigurationError("TABLE_NAME is missing"), 500],
    [new Error("boom"), 500],
  ])("maps %s to HTTP %i", (error, status) => {
    expect(failurePage(error).statusCode).toBe(status);
  });

  it("tells a browser when to retry after Exact was unavailable", () => {
    expect(failurePage(new ExactUnavailable("down", { retryAfterSeconds: 5 })).headers["Retry-After"]).toBe(
      "5",
    );
  });

  it("keeps configuration details and unexpected errors off the page", () => {
    const config = failurePage(new SecretUnavailable("Secret exact/link-key was not found"));
    const unexpected = failurePage(new Error("stack detail at /var/task/index.js"));

    expect(config.body).not.toContain("exact/link-key");
    expect(config.body).toContain("logs");
    expect(unexpected.body).not.toContain("/var/task");
  });
});
