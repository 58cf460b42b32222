import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import {
  ALICE,
  APP,
  BOB,
  codeGrant,
  control,
  generationOf,
  getMe,
  login,
  OTHER_APP,
  postForm,
  refresh,
  startTestSimulator,
} from "./helpers.js";
import {
  authorizeViaPages,
  authUrl,
  Browser,
  b2cUrls,
  formOf,
  html,
  openB2cPage,
  postSelfAsserted,
  redirectParams,
  settingsOf,
  totpAt,
} from "./login-helpers.js";

const REDIRECT_URI = APP.redirectUris[0] ?? "";
const KEY = `${APP.clientId}/${ALICE.username}`;

describe("login pages", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  describe("each step, as the contract describes it", () => {
    it("serves steps 1 to 8 with the contract's URLs, fields, cookies and bodies", async () => {
      const browser = new Browser();

      // 1. No session: to the start page, ReturnUrl = the auth request.
      const auth = await browser.get(authUrl(sim, { state: "s1" }));
      expect(auth.status).toBe(302);
      const returnUrl = new URL(auth.location ?? "").searchParams.get("ReturnUrl");
      expect(auth.location?.startsWith(`${sim.url}/docs/Login.aspx?ReturnUrl=`)).toBe(true);
      expect(returnUrl).toBe(
        new URL(authUrl(sim, { state: "s1" })).pathname + new URL(authUrl(sim, { state: "s1" })).search,
      );

      // 2. The start page: a form with the antiforgery token and the user name; a cookie.
      const start = await browser.get(auth.location ?? "");
      expect(start.status).toBe(200);
      expect(start.headers.get("content-type")).toMatch(/^text\/html/);
      const startForm = formOf(start);
      expect(Object.keys(startForm.fields)).toEqual(["__RequestVerificationToken", "LoginForm$UserName"]);
      expect(html(start).querySelector("form")?.getAttribute("action")).toMatch(/^Login\.aspx\?ReturnUrl=/);
      expect(await browser.cookieNames(start.url)).toEqual(["__RequestVerificationToken"]);

      // 3. The user name post: to the B2C authorize page.
      const posted = await browser.post(startForm.action, {
        ...startForm.fields,
        LoginForm$UserName: ALICE.username,
      });
      expect(posted.status).toBe(302);
      expect(posted.location).toMatch(
        new RegExp(
          `^${sim.url}/login\\.exact\\.com/exactonlineb2c\\.onmicrosoft\\.com/B2C_1A_SignIn/oauth2/v2\\.0/authorize\\?`,
        ),
      );

      // 4. The B2C page: SETTINGS, the three inputs, the csrf cookie.
      const b2c = await browser.get(posted.location ?? "");
      expect(b2c.status).toBe(200);
      const settings = settingsOf(b2c);
      expect(settings).toMatchObject({
        csrf: expect.any(String),
        transId: expect.stringMatching(/^StateProperties=/),
        hosts: {
          tenant: "/login.exact.com/exactonlineb2c.onmicrosoft.com/B2C_1A_SignIn",
          policy: "B2C_1A_SignIn",
        },
      });
      for (const name of ["signInName", "password", "totpVerificationCode"]) {
        expect(html(b2c).querySelector(`form input[name="${name}"]`), name).not.toBeNull();
      }
      expect(html(b2c).querySelector('input[name="signInName"]')?.getAttribute("value")).toBe(ALICE.username);
      expect((await browser.jar.getCookies(b2c.url)).map((cookie) => cookie.key)).toContain("x-ms-cpim-csrf");

      // 5. SelfAsserted: HTTP 200 {"status":"200"}.
      const complete = settings as Parameters<typeof b2cUrls>[1];
      const asserted = await postSelfAsserted(browser, b2c, complete, { ...ALICE, totp: await totpAt(sim) });
      expect(asserted.status).toBe(200);
      expect(JSON.parse(asserted.text)).toEqual({ status: "200" });

      // 6. confirmed: a form posting state, code and id_token to signin-azureb2c, and a script.
      const confirmed = await browser.get(b2cUrls(b2c, complete).confirmed);
      expect(confirmed.status).toBe(200);
      const form = html(confirmed).querySelector("form");
      expect(form?.getAttribute("method")).toBe("post");
      expect(form?.getAttribute("action")).toBe(`${sim.url}/signin-azureb2c`);
      expect(Object.keys(formOf(confirmed).fields)).toEqual(["state", "code", "id_token"]);
      expect(html(confirmed).querySelector("script")?.text).toContain("submit()");

      // 7. signin-azureb2c: the session cookie, back to the auth request.
      const signedIn = await browser.post(formOf(confirmed).action, formOf(confirmed).fields);
      expect(signedIn.status).toBe(302);
      expect(signedIn.location).toBe(`${sim.url}${returnUrl}`);
      expect(await browser.cookieNames(sim.url)).toContain("ExactSession");

      // 7b. First authorization of APP by ALICE: the consent page.
      const consent = await browser.get(signedIn.location ?? "");
      expect(consent.status).toBe(200);
      const consentForm = html(consent).querySelector("form");
      expect(consentForm?.getAttribute("method")).toBe("post");
      expect(new URL(consentForm?.getAttribute("action") ?? "", consent.url).toString()).toBe(
        `${sim.url}${returnUrl}`,
      );
      expect(
        html(consent).querySelector('button[type="submit"][name="consent"][value="allow"]'),
      ).not.toBeNull();

      // 8. The redirect with a code and the state.
      const { action, fields } = formOf(consent);
      const final = await browser.post(action, { ...fields, consent: "allow" });
      expect(final.status).toBe(302);
      expect(final.location?.startsWith(`${REDIRECT_URI}?code=simAC%21`)).toBe(true);
      expect(redirectParams(final.location ?? "").query.get("state")).toBe("s1");
    });
  });

  describe("response_type=code", () => {
    it("redirects with a code that the token endpoint exchanges for a chain; /current/Me works", async () => {
      const { steps, location } = await authorizeViaPages(sim, new Browser());

      const { query } = redirectParams(location);
      expect(steps).toEqual(["login", "consent"]);
      expect(query.get("state")).toBe("st-123");
      const exchanged = await postForm(sim, codeGrant(query.get("code") ?? ""));
      expect(exchanged.status).toBe(200);
      expect(exchanged.body).toMatchObject({ token_type: "bearer", expires_in: "600" });
      expect(generationOf(sim)).toBe(1);
      const me = await getMe(sim, exchanged.body.access_token);
      expect(me.status).toBe(200);
      expect(me.body.d.results[0]).toMatchObject({ UserID: ALICE.userId, UserName: ALICE.username });
    });

    it("gives a code as /_sim/authorize does: single use, bound to client and redirect URI, 3 minutes", async () => {
      const browser = new Browser();
      const first = redirectParams((await authorizeViaPages(sim, browser)).location).query.get("code") ?? "";
      expect(
        (await postForm(sim, { ...codeGrant(first), redirect_uri: "https://elsewhere.example/cb" })).body,
      ).toEqual({
        error: "invalid_grant",
        error_description: "redirect_uri does not match the authorization request.",
      });
      expect((await postForm(sim, codeGrant(first, OTHER_APP))).body.error_description).toBe(
        "Unknown authorization code.",
      );
      expect((await postForm(sim, codeGrant(first))).status).toBe(200);
      expect((await postForm(sim, codeGrant(first))).body.error_description).toBe(
        "The authorization code was already used.",
      );

      const second = redirectParams((await authorizeViaPages(sim, browser)).location).query.get("code") ?? "";
      sim.advanceClock(180);
      expect((await postForm(sim, codeGrant(second))).body.error_description).toBe(
        "The authorization code expired.",
      );
    });

    it("starts a new chain when exchanged, superseding the old one, as any code does", async () => {
      const old = await login(sim);
      const code =
        redirectParams((await authorizeViaPages(sim, new Browser())).location).query.get("code") ?? "";

      expect((await postForm(sim, codeGrant(code))).status).toBe(200);

      sim.advanceClock(570);
      expect((await refresh(sim, old.refreshToken)).status).toBe(401);
      expect(sim.stats().chains[KEY]).toMatchObject({ chainsStarted: 2, generation: 1 });
    });
  });

  describe("response_type=token", () => {
    it("redirects with the access token in the fragment; /current/Me accepts it for accessTtl", async () => {
      const { location } = await authorizeViaPages(sim, new Browser(), {
        responseType: "token",
        state: "imp",
      });

      expect(location.startsWith(`${REDIRECT_URI}#access_token=simAT%21`)).toBe(true);
      const { query, fragment } = redirectParams(location);
      expect([...query.keys()]).toEqual([]);
      expect([...fragment.keys()]).toEqual(["access_token", "token_type", "expires_in", "state"]);
      expect(fragment.get("token_type")).toBe("bearer");
      expect(fragment.get("expires_in")).toBe("600");
      expect(fragment.get("state")).toBe("imp");
      const accessToken = fragment.get("access_token") ?? "";
      expect((await getMe(sim, accessToken)).body.d.results[0].UserName).toBe(ALICE.username);
      sim.advanceClock(599);
      expect((await getMe(sim, accessToken)).status).toBe(200);
      sim.advanceClock(1);
      expect((await getMe(sim, accessToken)).status).toBe(401);
    });

    it("uses the configured access-token lifetime for expires_in", async () => {
      const short = await startTestSimulator({ accessTtlSeconds: 20 });
      try {
        const { location } = await authorizeViaPages(short, new Browser(), { responseType: "token" });
        expect(redirectParams(location).fragment.get("expires_in")).toBe("20");
      } finally {
        await short.close();
      }
    });

    it("leaves the user's refresh-token chain alone and starts none", async () => {
      const tokens = await login(sim);

      const { location } = await authorizeViaPages(sim, new Browser(), { responseType: "token" });

      expect(redirectParams(location).fragment.get("access_token")).toMatch(/^simAT!/);
      expect(sim.stats().chains[KEY]).toMatchObject({ chainsStarted: 1, generation: 1 });
      expect((await getMe(sim, tokens.accessToken)).status).toBe(200);
      sim.advanceClock(570);
      expect((await refresh(sim, tokens.refreshToken)).status).toBe(200);
      expect(generationOf(sim)).toBe(2);
    });
  });

  describe("response_type=token with oldAccessTokenValidAfterRefresh off", () => {
    it("the implicit token is the pair's newest: it revokes the chain's access token, and a refresh revokes it", async () => {
      sim.setVariants({ oldAccessTokenValidAfterRefresh: false });
      const tokens = await login(sim);

      const { location } = await authorizeViaPages(sim, new Browser(), { responseType: "token" });
      const implicit = redirectParams(location).fragment.get("access_token") ?? "";

      expect((await getMe(sim, tokens.accessToken)).status).toBe(401);
      expect((await getMe(sim, implicit)).status).toBe(200);
      sim.advanceClock(570);
      expect((await refresh(sim, tokens.refreshToken)).status).toBe(200);
      expect((await getMe(sim, implicit)).status).toBe(401);
      expect(sim.stats().chains[KEY]?.meRequests).toMatchObject({ ok: 1, unauthorized: 2 });
    });
  });

  describe("consent and sessions", () => {
    it("shows the consent page only the first time a user authorizes an app", async () => {
      const first = await authorizeViaPages(sim, new Browser());
      sim.advanceClock(30); // a TOTP step is good for one login
      const second = await authorizeViaPages(sim, new Browser());

      expect(first.steps).toEqual(["login", "consent"]);
      expect(second.steps).toEqual(["login"]);
    });

    it("asks again for another app, and for another user of the same app", async () => {
      await authorizeViaPages(sim, new Browser());
      sim.advanceClock(30);

      expect((await authorizeViaPages(sim, new Browser(), { app: OTHER_APP })).steps).toEqual([
        "login",
        "consent",
      ]);
      expect((await authorizeViaPages(sim, new Browser(), {}, BOB)).steps).toEqual(["login", "consent"]);
    });

    it("skips the login while the session cookie is held, with both response types", async () => {
      const browser = new Browser();
      await authorizeViaPages(sim, browser);

      const again = await authorizeViaPages(sim, browser);
      const implicit = await authorizeViaPages(sim, browser, { responseType: "token" });

      expect(again.steps).toEqual([]);
      expect(redirectParams(again.location).query.get("code")).toMatch(/^simAC!/);
      expect(implicit.steps).toEqual([]);
      expect(sim.stats().logins[ALICE.username]?.success).toBe(1);
    });

    it("force_login=1 ignores the session, logs in again, and returns to the request without force_login", async () => {
      const browser = new Browser();
      await authorizeViaPages(sim, browser);
      sim.advanceClock(30); // a new TOTP step

      const forced = await browser.get(authUrl(sim, { forceLogin: true }));

      expect(forced.status).toBe(302);
      const returnUrl = new URL(forced.location ?? "").searchParams.get("ReturnUrl") ?? "";
      expect(returnUrl).not.toContain("force_login");
      expect(new URLSearchParams(returnUrl.split("?")[1]).get("client_id")).toBe(APP.clientId);
      const flow = await authorizeViaPages(sim, browser, { forceLogin: true });
      expect(flow.steps).toEqual(["login"]);
      expect(sim.stats().logins[ALICE.username]?.success).toBe(2);
    });

    it("force_login=1 may switch the user: the new session replaces the old", async () => {
      const browser = new Browser();
      await authorizeViaPages(sim, browser, { responseType: "token" });

      const asBob = await authorizeViaPages(sim, browser, { responseType: "token", forceLogin: true }, BOB);

      const token = redirectParams(asBob.location).fragment.get("access_token") ?? "";
      expect((await getMe(sim, token)).body.d.results[0].UserName).toBe(BOB.username);
      const next = await authorizeViaPages(sim, browser, { responseType: "token" });
      expect(next.steps).toEqual([]);
      const nextToken = redirectParams(next.location).fragment.get("access_token") ?? "";
      expect((await getMe(sim, nextToken)).body.d.results[0].UserName).toBe(BOB.username);
    });

    it("a reset forgets sessions and consents", async () => {
      const browser = new Browser();
      await authorizeViaPages(sim, browser);

      sim.reset(); // also forgets the TOTP step used

      expect((await authorizeViaPages(sim, browser)).steps).toEqual(["login", "consent"]);
    });

    it("the user may change the name B2C prefills: the one signed in with counts", async () => {
      const browser = new Browser();
      const auth = await browser.get(authUrl(sim, { responseType: "token" }));
      const { page, settings } = await openB2cPage(browser, auth.location ?? "", "someone.else@example.com");
      const asserted = await postSelfAsserted(browser, page, settings, { ...ALICE, totp: await totpAt(sim) });
      expect(JSON.parse(asserted.text)).toEqual({ status: "200" });
      const confirmed = await browser.get(b2cUrls(page, settings).confirmed);
      const signedIn = await browser.post(formOf(confirmed).action, formOf(confirmed).fields);
      const consent = await browser.get(signedIn.location ?? "");
      const final = await browser.post(formOf(consent).action, {
        ...formOf(consent).fields,
        consent: "allow",
      });

      const token = redirectParams(final.location ?? "").fragment.get("access_token") ?? "";
      expect((await getMe(sim, token)).body.d.results[0].UserName).toBe(ALICE.username);
    });
  });

  describe("stats", () => {
    it("counts authorizations by response type per chain key and in the totals; /_sim/authorize does not count", async () => {
      const browser = new Browser();
      await authorizeViaPages(sim, browser);
      await authorizeViaPages(sim, browser);
      await authorizeViaPages(sim, browser, { responseType: "token" });
      await authorizeViaPages(sim, browser, { app: OTHER_APP, responseType: "token" });
      await login(sim);

      const stats = sim.stats();

      expect(stats.chains[KEY]?.authorizations).toEqual({ code: 2, token: 1 });
      expect(stats.chains[`${OTHER_APP.clientId}/${ALICE.username}`]).toMatchObject({
        generation: 0,
        chainsStarted: 0,
        authorizations: { code: 0, token: 1 },
      });
      expect(stats.totals.authorizations).toEqual({ code: 2, token: 2 });
      expect(stats.logins).toEqual({
        [ALICE.username]: {
          success: 1,
          bad_password: 0,
          bad_totp: 0,
          totp_reused: 0,
          locked: 0,
          unknown_user: 0,
        },
      });
      expect(stats.totals.logins.success).toBe(1);
    });

    it("serves the same stats through GET /_sim/stats", async () => {
      await authorizeViaPages(sim, new Browser(), { responseType: "token" });

      const { body } = await control(sim, "GET", "/_sim/stats");

      expect(body.logins[ALICE.username].success).toBe(1);
      expect(body.chains[KEY].authorizations).toEqual({ code: 0, token: 1 });
      expect(body.totals.logins).toMatchObject({ success: 1 });
      expect(body.totals.authorizations).toEqual({ code: 0, token: 1 });
    });
  });
});
