import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import { ALICE, APP, OTHER_APP, rawRequest, startTestSimulator } from "./helpers.js";
import {
  authorizeViaPages,
  authUrl,
  type B2cSettings,
  Browser,
  b2cUrls,
  formOf,
  html,
  logIn,
  openB2cPage,
  type PageResponse,
  postSelfAsserted,
  redirectParams,
  totpAt,
} from "./login-helpers.js";

const REDIRECT_URI = APP.redirectUris[0] ?? "";
const B2C = "/login.exact.com/exactonlineb2c.onmicrosoft.com/B2C_1A_SignIn";

/** A refusal page: 400, HTML, the reason in #error, no redirect. */
function expectRefusal(response: PageResponse, message: RegExp): void {
  expect(response.status).toBe(400);
  expect(response.headers.get("content-type")).toMatch(/^text\/html/);
  expect(response.location).toBeUndefined();
  expect(html(response).querySelector("#error")?.text).toMatch(message);
}

describe("login pages: bad input", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  function authQuery(params: Record<string, string>): string {
    return `${sim.url}/api/oauth2/auth?${new URLSearchParams(params)}`;
  }

  describe("GET /api/oauth2/auth", () => {
    const valid = { client_id: APP.clientId, redirect_uri: REDIRECT_URI, response_type: "code", state: "s" };

    it.each([
      ["no client_id", { ...valid, client_id: "" }, /Missing parameter: client_id/],
      [
        "an unknown client_id",
        { ...valid, client_id: "3f1c2a5e-0000-4000-8000-00000000dead" },
        /Unknown client_id/,
      ],
      ["no redirect_uri", { ...valid, redirect_uri: "" }, /Missing parameter: redirect_uri/],
      [
        "another app's redirect_uri",
        { ...valid, redirect_uri: OTHER_APP.redirectUris[0] ?? "" },
        /not registered/,
      ],
      [
        "a redirect_uri that only starts like a registered one",
        { ...valid, redirect_uri: `${REDIRECT_URI}/x` },
        /not registered/,
      ],
    ])("answers %s with a 400 page, never a redirect", async (_label, params, message) => {
      expectRefusal(await new Browser().get(authQuery(params)), message);
    });

    it("answers a repeated parameter with a 400 page", async () => {
      const url = `${authQuery(valid)}&client_id=${OTHER_APP.clientId}`;

      expectRefusal(await new Browser().get(url), /Parameter client_id given more than once/);
    });

    it("checks client and redirect URI before the session", async () => {
      const browser = new Browser();
      await authorizeViaPages(sim, browser);

      expectRefusal(await browser.get(authQuery({ ...valid, client_id: "nope" })), /Unknown client_id/);
    });

    it.each([
      ["an unknown response_type", "id_token"],
      ["no response_type", ""],
    ])("answers %s at the redirect URI with unsupported_response_type", async (_label, responseType) => {
      const response = await new Browser().get(
        authQuery({ ...valid, response_type: responseType, state: "x y" }),
      );

      expect(response.status).toBe(302);
      expect(response.location).toBe(`${REDIRECT_URI}?error=unsupported_response_type&state=x+y`);
    });

    it("leaves state out of the redirect when the request had none", async () => {
      const browser = new Browser();
      await authorizeViaPages(sim, browser);
      const { state: _state, ...withoutState } = valid;

      const response = await browser.get(authQuery(withoutState));

      expect([...redirectParams(response.location ?? "").query.keys()]).toEqual(["code"]);
    });

    it("keeps a redirect URI's own query and adds the code to it", async () => {
      const withQuery = "https://broker.example/callback?tenant=7";
      sim.addApp({
        clientId: "3f1c2a5e-0000-4000-8000-000000000003",
        clientSecret: "s",
        redirectUris: [withQuery],
      });
      const app = { clientId: "3f1c2a5e-0000-4000-8000-000000000003", redirectUris: [withQuery] };

      const { location } = await authorizeViaPages(sim, new Browser(), { app });

      expect(location.startsWith(`${withQuery}&code=simAC%21`)).toBe(true);
      expect(redirectParams(location).query.get("tenant")).toBe("7");
    });

    it("matches the path case-insensitively, as Exact does", async () => {
      const response = await new Browser().get(
        authQuery(valid).replace("/api/oauth2/auth", "/API/OAuth2/Auth"),
      );

      expect(response.status).toBe(302);
      expect(new URL(response.location ?? "").searchParams.get("ReturnUrl")).toMatch(
        /^\/API\/OAuth2\/Auth\?/,
      );
    });

    it("answers other methods 404 not_found, like any unknown route", async () => {
      const response = await rawRequest(authQuery(valid), { method: "PUT" });

      expect(response.status).toBe(404);
      expect(JSON.parse(response.body)).toEqual({ error: "not_found" });
    });
  });

  describe("/docs/Login.aspx", () => {
    async function startPage(browser: Browser): Promise<PageResponse> {
      const auth = await browser.get(authUrl(sim));
      return browser.get(auth.location ?? "");
    }

    it.each([
      ["no ReturnUrl", ""],
      ["an absolute ReturnUrl", "?ReturnUrl=https%3A%2F%2Fevil.example%2F"],
      ["a protocol-relative ReturnUrl", "?ReturnUrl=%2F%2Fevil.example%2F"],
      ["a backslash ReturnUrl", "?ReturnUrl=%2F%5Cevil.example%2F"],
      ["two ReturnUrls", "?ReturnUrl=%2Fa&ReturnUrl=%2Fb"],
    ])("refuses %s", async (_label, query) => {
      expectRefusal(await new Browser().get(`${sim.url}/docs/Login.aspx${query}`), /ReturnUrl/);
    });

    it("refuses a post without the antiforgery cookie", async () => {
      const { action, fields } = formOf(await startPage(new Browser()));

      const posted = await new Browser().post(action, { ...fields, LoginForm$UserName: ALICE.username });

      expectRefusal(posted, /antiforgery token is missing or invalid/);
    });

    it("refuses a post without the token, or with another browser's token", async () => {
      const browser = new Browser();
      const { action, fields } = formOf(await startPage(browser));
      const other = formOf(await startPage(new Browser()));

      expectRefusal(await browser.post(action, { LoginForm$UserName: ALICE.username }), /antiforgery/);
      expectRefusal(
        await browser.post(action, { ...other.fields, LoginForm$UserName: ALICE.username }),
        /antiforgery/,
      );
      expect((await browser.post(action, { ...fields, LoginForm$UserName: ALICE.username })).status).toBe(
        302,
      );
    });

    it("refuses an empty user name, a body that is no form and a body over 16 KiB", async () => {
      const browser = new Browser();
      const { action, fields } = formOf(await startPage(browser));

      expectRefusal(
        await browser.post(action, { ...fields, LoginForm$UserName: "  " }),
        /Enter your user name/,
      );
      expectRefusal(
        await browser.send(action, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(fields),
        }),
        /Content-Type must be application\/x-www-form-urlencoded/,
      );
      expectRefusal(
        await browser.post(action, { ...fields, LoginForm$UserName: "x".repeat(17 * 1024) }),
        /too large/,
      );
    });

    it("lets an unknown user name through to B2C: no user enumeration on the start page", async () => {
      const browser = new Browser();
      const { action, fields } = formOf(await startPage(browser));

      const posted = await browser.post(action, { ...fields, LoginForm$UserName: "nobody@example.com" });

      expect(posted.status).toBe(302);
      expect(posted.location).toContain("/B2C_1A_SignIn/oauth2/v2.0/authorize?");
    });
  });

  describe("B2C", () => {
    async function b2cPage(
      browser = new Browser(),
    ): Promise<{ browser: Browser; page: PageResponse; settings: B2cSettings }> {
      const auth = await browser.get(authUrl(sim));
      return { browser, ...(await openB2cPage(browser, auth.location ?? "", ALICE.username)) };
    }

    it("refuses the authorize page for an unknown state", async () => {
      expectRefusal(await new Browser().get(`${sim.url}${B2C}/oauth2/v2.0/authorize?state=nope`), /Unknown/);
    });

    it.each([
      ["no X-CSRF-TOKEN header", () => ({})],
      ["a wrong X-CSRF-TOKEN header", () => ({ "X-CSRF-TOKEN": "wrong" })],
    ])(
      "SelfAsserted refuses %s with a 400 that is not JSON, and counts no login",
      async (_label, headers) => {
        const { browser, page, settings } = await b2cPage();

        const response = await postSelfAsserted(
          browser,
          page,
          settings,
          { ...ALICE, totp: await totpAt(sim) },
          headers(),
        );

        expectRefusal(response, /csrf/);
        expect(sim.stats().totals.logins.success + sim.stats().totals.logins.bad_password).toBe(0);
      },
    );

    it("SelfAsserted refuses the right header without the csrf cookie", async () => {
      const { page, settings } = await b2cPage();

      const response = await postSelfAsserted(new Browser(), page, settings, {
        ...ALICE,
        totp: await totpAt(sim),
      });

      expectRefusal(response, /csrf/);
    });

    it("SelfAsserted refuses another transaction's csrf token", async () => {
      const browser = new Browser();
      const first = await b2cPage(browser);
      const second = await b2cPage(browser); // the cookie now holds the second page's token

      const response = await postSelfAsserted(browser, first.page, first.settings, {
        ...ALICE,
        totp: await totpAt(sim),
      });

      expectRefusal(response, /csrf/);
      expect(
        JSON.parse(
          (
            await postSelfAsserted(browser, second.page, second.settings, {
              ...ALICE,
              totp: await totpAt(sim),
            })
          ).text,
        ),
      ).toEqual({ status: "200" });
    });

    it.each([
      [
        "an unknown tx",
        (s: B2cSettings) => ({ ...s, transId: "StateProperties=nope" }),
        /Unknown or finished transaction/,
      ],
      [
        "another policy",
        (s: B2cSettings) => ({ ...s, hosts: { ...s.hosts, policy: "B2C_1A_Other" } }),
        /Unknown policy/,
      ],
    ])("SelfAsserted refuses %s", async (_label, change, message) => {
      const { browser, page, settings } = await b2cPage();

      const response = await postSelfAsserted(
        browser,
        page,
        change(settings),
        { ...ALICE, totp: await totpAt(sim) },
        {
          "X-CSRF-TOKEN": settings.csrf,
        },
      );

      expectRefusal(response, message);
    });

    it("SelfAsserted refuses a body that is no form", async () => {
      const { browser, page, settings } = await b2cPage();

      const response = await browser.send(b2cUrls(page, settings).selfAsserted, {
        method: "POST",
        headers: { "X-CSRF-TOKEN": settings.csrf, "Content-Type": "application/json" },
        body: "{}",
      });

      expectRefusal(response, /Content-Type/);
    });

    it("confirmed refuses a transaction without a successful sign-in, a wrong csrf_token, and a second call", async () => {
      const { browser, page, settings } = await b2cPage();
      const { confirmed } = b2cUrls(page, settings);

      expectRefusal(await browser.get(confirmed), /Sign in first/);
      await postSelfAsserted(browser, page, settings, { ...ALICE, totp: await totpAt(sim) });
      expectRefusal(
        await browser.get(confirmed.replace(`csrf_token=${settings.csrf}`, "csrf_token=wrong")),
        /csrf/,
      );
      expect((await browser.get(confirmed)).status).toBe(200);
      expectRefusal(await browser.get(confirmed), /Unknown or finished transaction/);
    });
  });

  describe("POST /signin-azureb2c", () => {
    async function confirmedForm(
      browser = new Browser(),
    ): Promise<{ action: string; fields: Record<string, string> }> {
      const auth = await browser.get(authUrl(sim));
      const { page, settings } = await openB2cPage(browser, auth.location ?? "", ALICE.username);
      await postSelfAsserted(browser, page, settings, { ...ALICE, totp: await totpAt(sim) });
      sim.advanceClock(30); // the next login in the test needs a new step
      return formOf(await browser.get(b2cUrls(page, settings).confirmed));
    }

    it("refuses garbage, and a body that is no form", async () => {
      const browser = new Browser();
      const url = `${sim.url}/signin-azureb2c`;

      expectRefusal(
        await browser.post(url, { state: "x", code: "y", id_token: "z" }),
        /Unknown or already used sign-in state/,
      );
      expectRefusal(await browser.post(url, {}), /sign-in state/);
      expectRefusal(
        await browser.send(url, { method: "POST", headers: {}, body: "state=x" }),
        /Content-Type/,
      );
    });

    it("refuses a replay of the same post", async () => {
      const browser = new Browser();
      const { action, fields } = await confirmedForm(browser);

      expect((await browser.post(action, fields)).status).toBe(302);
      expectRefusal(await browser.post(action, fields), /Unknown or already used sign-in state/);
    });

    it("refuses a code with another flow's state, and uses the code up", async () => {
      const first = await confirmedForm();
      const second = await confirmedForm();

      expectRefusal(
        await new Browser().post(first.action, { ...first.fields, state: second.fields.state ?? "" }),
        /invalid/,
      );
      expectRefusal(await new Browser().post(first.action, first.fields), /invalid/);
      expect((await new Browser().post(second.action, second.fields)).status).toBe(302);
    });

    it("refuses a wrong id_token, and a code older than 5 minutes", async () => {
      const first = await confirmedForm();
      expectRefusal(
        await new Browser().post(first.action, { ...first.fields, id_token: "e30.e30." }),
        /invalid/,
      );

      const second = await confirmedForm();
      sim.advanceClock(300);
      expectRefusal(await new Browser().post(second.action, second.fields), /expired/);
    });

    it("gives a session only to the browser that posts the form", async () => {
      const { action, fields } = await confirmedForm();
      const other = new Browser();

      const signedIn = await other.post(action, fields);

      expect(signedIn.status).toBe(302);
      expect(await other.cookieNames(sim.url)).toContain("ExactSession");
    });
  });

  describe("POST /api/oauth2/auth (consent)", () => {
    async function consentPage(browser: Browser, responseType = "code"): Promise<PageResponse> {
      const auth = await browser.get(authUrl(sim, { responseType }));
      const result = await logIn(sim, browser, auth.location ?? "", ALICE);
      if (!result.ok) throw new Error("login failed");
      const consent = await browser.get(result.response.location ?? "");
      expect(consent.status).toBe(200);
      return consent;
    }

    it("refuses a post without the antiforgery token or with one of another session", async () => {
      const browser = new Browser();
      const { action } = formOf(await consentPage(browser));
      sim.advanceClock(30);
      const other = formOf(await consentPage(new Browser()));

      expectRefusal(await browser.post(action, { consent: "allow" }), /antiforgery/);
      expectRefusal(await browser.post(action, { ...other.fields, consent: "allow" }), /antiforgery/);
    });

    it("refuses a token of the consent page of another app", async () => {
      const browser = new Browser();
      const { fields } = formOf(await consentPage(browser));

      const url = authUrl(sim, { app: OTHER_APP });
      expectRefusal(await browser.post(url, { ...fields, consent: "allow" }), /antiforgery/);
    });

    it.each([
      ["code", "deny", `${REDIRECT_URI}?error=access_denied&state=st-123`],
      ["code", "", `${REDIRECT_URI}?error=access_denied&state=st-123`],
      ["token", "deny", `${REDIRECT_URI}#error=access_denied&state=st-123`],
    ])(
      "response_type=%s, consent=%j: access_denied at the redirect URI, nothing recorded",
      async (responseType, consent, location) => {
        const browser = new Browser();
        const { action, fields } = formOf(await consentPage(browser, responseType));

        const response = await browser.post(action, { ...fields, consent });

        expect(response.status).toBe(302);
        expect(response.location).toBe(location);
        expect((await browser.get(authUrl(sim, { responseType }))).status).toBe(200);
        expect(sim.stats().totals.authorizations).toEqual({ code: 0, token: 0 });
      },
    );

    it("without a session: to the login, as the GET", async () => {
      const response = await new Browser().post(authUrl(sim), { consent: "allow" });

      expect(response.status).toBe(302);
      expect(response.location).toMatch(/\/docs\/Login\.aspx\?ReturnUrl=/);
    });
  });

  it("never answers a 5xx, whatever arrives at a login path", async () => {
    const paths = [
      "/api/oauth2/auth",
      "/docs/Login.aspx",
      `${B2C}/oauth2/v2.0/authorize`,
      `${B2C}/SelfAsserted`,
      `${B2C}/api/CombinedSigninAndSignup/confirmed`,
      "/signin-azureb2c",
    ];
    const queries = [
      "",
      "?",
      "?%",
      "?client_id=%E0%A4%A&redirect_uri=%",
      `?client_id=${APP.clientId}&redirect_uri=${encodeURIComponent(REDIRECT_URI)}&response_type=token&force_login=1`,
      "?ReturnUrl=%2F&tx=&p=B2C_1A_SignIn&csrf_token=&state=",
    ];
    const bodies = ["", "%%%", "a=1&a=2&a", "\u0000\uffff", "consent=allow&__RequestVerificationToken=x"];
    const headerSets: Record<string, string>[] = [
      {},
      { "Content-Type": "application/x-www-form-urlencoded", Cookie: "ExactSession=; x-ms-cpim-csrf=%; =;;" },
      { "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-TOKEN": "", Host: "bad host" },
    ];
    for (const path of paths) {
      for (const query of queries) {
        for (const method of ["GET", "POST"]) {
          for (const headers of headerSets) {
            for (const body of method === "POST" ? bodies : [undefined]) {
              const response = await rawRequest(`${sim.url}${path}${query}`, { method, headers, body });
              expect(response.status, `${method} ${path}${query}`).toBeLessThan(500);
            }
          }
        }
      }
    }
  });
});
