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
import {
  confirmationPage,
  escapeHtml,
  failurePage,
  redirectAnswer,
  refusalPage,
  seededPage,
} from "../../lib/onboarding/connect-pages.js";
import { ConnectRefused, RefusalReason } from "../../lib/onboarding/connect-refused.js";

const SEEDED = {
  connectionId: "acme",
  exactUserId: "0f5a…",
  exactUserName: "jan@example.com",
  division: 424242,
  generation: 1,
};

const CONFIRM = {
  connectionId: "acme",
  form: { c: "acme", n: "AAAAAAAAAAAAAAAAAAAAAA", e: "1767269700", s: "sig" },
  exactOrigin: "https://start.exactonline.nl",
  expiresAt: "2026-01-01T12:15:00.000Z",
  bindingCookie:
    "__Host-connect-AAAAAAAAAAAAAAAAAAAAAA=v; Max-Age=1800; Path=/; Secure; HttpOnly; SameSite=Lax",
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
      confirmationPage(CONFIRM),
    ]) {
      expect(answer.headers).toMatchObject({
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
      });
    }
    expect(redirectAnswer("https://start.exactonline.nl/x?a=1&b=2").body).toContain("x?a=1&amp;b=2");
  });

  it("answers the POST with a 303 to Exact that sets no cookie (the browser keeps the page's)", () => {
    const answer = redirectAnswer("https://start.exactonline.nl/api/oauth2/auth?state=x");

    expect(answer.statusCode).toBe(303);
    expect(answer.headers.Location).toBe("https://start.exactonline.nl/api/oauth2/auth?state=x");
    expect(answer.cookies).toBeUndefined();
  });

  it("sets the confirmation page's cookie in the Function URL's cookies array, not as a header", () => {
    const answer = confirmationPage(CONFIRM);

    expect(answer.cookies).toEqual([CONFIRM.bindingCookie]);
    expect(Object.keys(answer.headers).map((name) => name.toLowerCase())).not.toContain("set-cookie");
  });

  describe("confirmation page", () => {
    it("posts the link's fields back to /start with one button, escaped", () => {
      const page = confirmationPage({ ...CONFIRM, form: { ...CONFIRM.form, s: 'a"><b>' } });

      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('<form method="post" action="/start">');
      expect(page.body).toContain('<input type="hidden" name="c" value="acme">');
      expect(page.body).toContain('<input type="hidden" name="s" value="a&quot;&gt;&lt;b&gt;">');
      expect(page.body).toContain('<button type="submit">Continue to Exact Online</button>');
      expect(page.body).toContain("2026-01-01T12:15:00.000Z");
      expect(page.body).not.toContain("<script");
    });

    it("allows the form to post here and its redirect to reach Exact, and nothing else to load", () => {
      const csp = confirmationPage(CONFIRM).headers["Content-Security-Policy"] ?? "";

      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("form-action 'self' https://start.exactonline.nl https:;");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(seededPage(SEEDED, "acme").headers["Content-Security-Policy"]).toContain("form-action 'none'");
    });
  });

  it.each(Object.values(RefusalReason))("shows the stable reason code %s on its refusal page", (reason) => {
    const page = refusalPage(new ConnectRefused(reason, "state", "refused", { connectionId: "acme" }));

    expect(page.body).toContain(`Reason code: ${reason}.`);
    expect(page.body).toContain("Nothing was changed.");
  });

  it("tells a person refused for another browser where the attempt can still be finished", () => {
    const page = refusalPage(
      new ConnectRefused(RefusalReason.BrowserCookieMissing, "state", "not started in this browser"),
    );

    expect(page.statusCode).toBe(403);
    expect(page.body).toContain("Finish in the browser that opened the link");
    expect(page.body).toContain("with cookies allowed");
  });

  it("tells a person whose button came without the page's cookie to open the link again in this browser", () => {
    const page = refusalPage(
      new ConnectRefused(RefusalReason.BrowserCookieMissing, "link", "this browser did not open the link"),
    );

    expect(page.statusCode).toBe(403);
    expect(page.body).toContain("Open the link in this browser");
    expect(page.body).toContain("Open the link again in this browser, with cookies allowed");
    expect(page.body).toContain("The link stays usable until it expires.");
    expect(page.body).toContain("Reason code: browser_cookie_missing.");
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
