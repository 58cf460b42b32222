import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { Browser, formOf } from "../sim/login-helpers.js";
import { type ConnectHarness, startConnectHarness } from "./connect-harness.js";

/**
 * The connect link against what happens to links in real life: chat and mail clients fetch them
 * for a preview, people click them twice, and a `state` can be seen by someone else (a scanner,
 * a proxy log) who then brings their own Exact user's code. Each refusal must be a clear page
 * with its reason code, leave every item of the table as it was, and cost no token call at Exact.
 */
describe("connect link: previews, replays and other browsers", () => {
  let h: ConnectHarness;

  beforeEach(async () => {
    h = await startConnectHarness();
  });
  afterEach(async () => {
    await h?.close();
  });

  /** The attempt's nonce, from the state's signed payload (it names the binding cookie). */
  function nonceOf(state: string): string {
    const payload = JSON.parse(Buffer.from(state.split(".")[0] ?? "", "base64url").toString("utf8"));
    return String(payload.nonce);
  }

  /** Runs `act` and checks that it changed no item of the table and made no token call at Exact. */
  async function changesNothing<T>(act: () => Promise<T>): Promise<T> {
    const items = await h.tableItems();
    const tokenCalls = h.tokenCalls();

    const page = await act();

    expect(await h.tableItems()).toEqual(items);
    expect(h.tokenCalls()).toBe(tokenCalls);
    return page;
  }

  describe("a link preview", () => {
    it("spends nothing by GET or HEAD, and the person's click then connects", async () => {
      const conn = await h.addConnection("acme", 424242);
      const link = await h.link("acme");

      // A preview bot: fetches the URL (following redirects, were there any), no cookies, no forms.
      const [preview, head] = await changesNothing(() =>
        Promise.all(
          [
            fetch(link, { headers: { "user-agent": "Slackbot-LinkExpanding 1.0" } }),
            fetch(link, { method: "HEAD" }),
          ].map(async (pending) => {
            const res = await pending;
            return {
              status: res.status,
              text: await res.text(),
              location: res.headers.get("location"),
              cookies: res.headers.getSetCookie(),
            };
          }),
        ),
      );

      expect(preview).toMatchObject({ status: 200, location: null });
      expect(preview?.text).toContain("Continue to Exact Online");
      expect(head).toMatchObject({ status: 200, text: "", location: null });
      // Each got a binding cookie of its own; a cookie binds nothing until a POST brings it.
      for (const fetched of [preview, head]) {
        expect(fetched?.cookies).toEqual([expect.stringMatching(/^__Host-connect-[A-Za-z0-9_-]{22}=/)]);
      }
      expect(h.fx.stack.sim.stats().totals.authorizations.code).toBe(0);

      const page = await h.connectInBrowser(link, conn);

      expect(page.status).toBe(200);
      expect(page.text).toContain(`as ${conn.username} (division 424242)`);
      expect(await h.record("acme")).toMatchObject({ status: ChainStatus.Active, generation: 1 });
    });

    it("shows the confirmation page as often as it is fetched until the button is pressed", async () => {
      await h.addConnection("acme");
      const link = await h.link("acme");

      const pages = await changesNothing(async () => {
        const first = await new Browser().get(link);
        const second = await new Browser().get(link);
        expect(second.text).toBe(first.text);
        return first;
      });

      expect(pages.status).toBe(200);
      await h.clickThrough(new Browser(), link);
    });

    it("that keeps the page's cookie changes nothing: the person's own GET and POST connect, and the preview's cookie never matters", async () => {
      const conn = await h.addConnection("acme");
      const intruder = await h.addConnection("intruder");
      const link = await h.link("acme");
      // A preview bot with a cookie jar: it holds a cookie of this very attempt.
      const preview = new Browser();
      await changesNothing(() => preview.get(link));
      const nonce = new URL(link).searchParams.get("n") ?? "";
      expect(await preview.cookieNames(h.server.url)).toEqual([`__Host-connect-${nonce}`]);

      const person = new Browser();
      const { state } = await h.clickThrough(person, link);

      // The state is bound to the person's cookie, so the preview's cookie cannot finish it...
      const fromPreview = await changesNothing(() =>
        h.callback(preview, { code: h.authorize(intruder.username), state }),
      );
      expect(fromPreview.status).toBe(403);
      expect(fromPreview.text).toContain("Reason code: browser_cookie_mismatch.");
      // ...and the person's own browser connects, as themselves.
      const page = await h.callback(person, { code: h.authorize(conn.username), state });
      expect(page.status).toBe(200);
      expect(await h.record("acme")).toMatchObject({
        status: ChainStatus.Active,
        exactUserName: conn.username,
        generation: 1,
      });
    });
  });

  describe("a button's POST without the page's cookie", () => {
    it.each([
      // Someone who saw the page's form (or the link) posts its fields from their own browser; a
      // forged cross-site POST arrives the same way, as browsers send no SameSite=Lax cookie with it.
      ["from another browser", (_opener: Browser) => new Browser()],
      // The browser that opened the link, but it dropped the cookie (cookies blocked for the site).
      [
        "from a browser that blocks cookies",
        (opener: Browser) => {
          opener.jar.removeAllCookiesSync();
          return opener;
        },
      ],
    ])("%s is refused before anything is claimed, and the link stays usable", async (_what, posterOf) => {
      const conn = await h.addConnection("acme");
      const link = await h.link("acme");
      const opener = new Browser();
      const { action, fields } = formOf(await opener.get(link));

      const page = await changesNothing(() => posterOf(opener).post(action, fields));

      expect(page.status).toBe(403);
      expect(page.text).toContain("Open the link in this browser");
      expect(page.text).toContain("Open the link again in this browser, with cookies allowed");
      expect(page.text).toContain("Reason code: browser_cookie_missing.");
      expect(page.location).toBeUndefined();
      expect(page.headers.getSetCookie()).toEqual([]);
      expect(h.fx.stack.sim.stats().totals.authorizations.code).toBe(0);
      // Nothing was claimed: the same link, opened again in a browser that keeps cookies, connects.
      expect((await h.connectInBrowser(link, conn)).status).toBe(200);
      expect(await h.record("acme")).toMatchObject({ status: ChainStatus.Active, generation: 1 });
    });
  });

  describe("a replay", () => {
    it("of the button's POST is refused, in the same browser and in another, with a clear page", async () => {
      await h.addConnection("acme");
      const browser = new Browser();
      const { action, fields } = formOf(await browser.get(await h.link("acme")));
      expect((await browser.post(action, fields)).status).toBe(303);

      const again = await changesNothing(() => browser.post(action, fields));
      const elsewhere = await changesNothing(() => new Browser().post(action, fields));

      for (const page of [again, elsewhere]) {
        expect(page.status).toBe(410);
        expect(page.text).toContain("This link was already used");
        expect(page.text).toContain("Reason code: used.");
        expect(page.location).toBeUndefined();
        expect(page.headers.getSetCookie()).toEqual([]);
      }
    });

    it("of the link after its button was pressed says 'already used' instead of showing the button", async () => {
      await h.addConnection("acme");
      const link = await h.link("acme");
      await h.clickThrough(new Browser(), link);

      const page = await changesNothing(() => new Browser().get(link));

      expect(page.status).toBe(410);
      expect(page.text).toContain("Reason code: used.");
      expect(page.text).not.toContain("<form");
    });

    it("of the callback is refused in the same browser and in another, and keeps the chain as connected", async () => {
      const conn = await h.addConnection("acme");
      const browser = new Browser();
      const { state } = await h.clickThrough(browser, await h.link("acme"));
      const code = h.authorize(conn.username);
      expect((await h.callback(browser, { code, state })).status).toBe(200);

      const again = await changesNothing(() => h.callback(browser, { code, state }));
      const fresh = await changesNothing(() =>
        h.callback(browser, { code: h.authorize(conn.username), state }),
      );
      const elsewhere = await changesNothing(() => h.callback(new Browser(), { code, state }));

      for (const page of [again, fresh, elsewhere]) {
        expect(page.status).toBe(410);
        expect(page.text).toContain("This link was already used");
        expect(page.text).toContain("Reason code: used.");
      }
      expect(await h.record("acme")).toMatchObject({ status: ChainStatus.Active, generation: 1 });
    });
  });

  describe("a state used from another browser", () => {
    it("without the cookie is refused before any code exchange, and the real browser then connects", async () => {
      const conn = await h.addConnection("acme");
      const attacker = await h.addConnection("attacker-own");
      const victim = new Browser();
      const { state } = await h.clickThrough(victim, await h.link("acme"));

      // Someone who saw the state brings a code of their own Exact user, from their own browser.
      const page = await changesNothing(() =>
        h.callback(new Browser(), { code: h.authorize(attacker.username), state }),
      );

      expect(page.status).toBe(403);
      expect(page.text).toContain("Finish in the browser that opened the link");
      expect(page.text).toContain("Reason code: browser_cookie_missing.");
      expect(page.headers.getSetCookie()).toEqual([]);
      // The refusal used nothing up: the person who pressed the button still connects, as themselves.
      const real = await h.callback(victim, { code: h.authorize(conn.username), state });
      expect(real.status).toBe(200);
      expect(await h.record("acme")).toMatchObject({
        status: ChainStatus.Active,
        exactUserName: conn.username,
      });
    });

    it("with that browser's cookie of its own attempt is refused as 'missing' (one cookie per attempt)", async () => {
      await h.addConnection("acme");
      const other = await h.addConnection("other");
      const victim = new Browser();
      const attackerBrowser = new Browser();
      const { state } = await h.clickThrough(victim, await h.link("acme"));
      await h.clickThrough(attackerBrowser, await h.link("other"));

      const page = await changesNothing(() =>
        h.callback(attackerBrowser, { code: h.authorize(other.username), state }),
      );

      expect(page.status).toBe(403);
      expect(page.text).toContain("Reason code: browser_cookie_missing.");
      expect((await h.record("acme")).status).toBe(ChainStatus.New);
    });

    it("with a cookie of this attempt's name but another value is refused as 'mismatch'", async () => {
      const attacker = await h.addConnection("acme");
      const victim = new Browser();
      const { state } = await h.clickThrough(victim, await h.link("acme"));
      const attackerBrowser = new Browser();
      await attackerBrowser.jar.setCookie(
        `__Host-connect-${nonceOf(state)}=${"x".repeat(43)}; Path=/; Secure; HttpOnly; SameSite=Lax`,
        h.server.url,
      );

      const page = await changesNothing(() =>
        h.callback(attackerBrowser, { code: h.authorize(attacker.username), state }),
      );

      expect(page.status).toBe(403);
      expect(page.text).toContain("Reason code: browser_cookie_mismatch.");
      expect((await h.record("acme")).status).toBe(ChainStatus.New);
    });
  });

  describe("a code of another Exact user", () => {
    it("in the browser that started the attempt still gets the duplicate-user handling: the holder keeps it", async () => {
      const first = await h.addConnection("first");
      await h.addConnection("second");
      expect((await h.connectInBrowser(await h.link("first"), first)).status).toBe(200);
      const browser = new Browser();
      const { state } = await h.clickThrough(browser, await h.link("second"));

      // The person behind "second" logs in as the user "first" already holds.
      const page = await h.callback(browser, { code: h.authorize(first.username), state });

      expect(page.status).toBe(409);
      expect(page.text).toContain(`${first.username} is already connected as connection &quot;first&quot;`);
      expect(page.text).toContain("&quot;second&quot; is still not connected");
      expect(page.text).toContain("Reason code: duplicate_user.");
      expect(await h.record("first")).toMatchObject({ status: ChainStatus.Active, generation: 2 });
      expect((await h.record("second")).status).toBe(ChainStatus.New);
      expect((await h.fx.broker().vend.vend("first", 30)).generation).toBe(2);
    });
  });
});
