import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { ConnectionNotFound, ValidationError } from "../../lib/errors.js";
import { Browser, formOf } from "../sim/login-helpers.js";
import {
  CLIENT_ID,
  CLIENT_SECRET,
  type ConnectHarness,
  LINK_KEY,
  startConnectHarness,
} from "./connect-harness.js";

/** Every line this process writes while a test runs, to check that nothing secret reached a log. */
function captureOutput(): { lines: string[]; stop(): void } {
  const lines: string[] = [];
  const original = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
    lines.push(typeof chunk === "string" ? chunk : String(chunk));
    return (original as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  return {
    lines,
    stop: () => {
      process.stdout.write = original;
    },
  };
}

function expectHtml(page: { readonly headers: Headers }): void {
  expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
  expect(page.headers.get("cache-control")).toBe("no-store");
}

describe("connect flow through the Function URL handler", () => {
  let h: ConnectHarness;

  beforeEach(async () => {
    h = await startConnectHarness();
  });
  afterEach(async () => {
    await h?.close();
  });

  describe("happy path", () => {
    it("confirms, sends the browser to Exact, connects the chain, names the user and division, and a vend then works", async () => {
      const conn = await h.addConnection("acme", 424242);
      const browser = new Browser();
      const output = captureOutput();
      let link: string;
      let code: string;
      let state: string;
      let bindingCookie: string;
      let confirm: Awaited<ReturnType<Browser["get"]>>;
      let posted: Awaited<ReturnType<Browser["post"]>>;
      let page: Awaited<ReturnType<Browser["get"]>>;
      try {
        link = await h.link("acme");
        confirm = await browser.get(link);
        bindingCookie = confirm.headers.getSetCookie()[0] ?? "";
        const { action, fields } = formOf(confirm);
        posted = await browser.post(action, fields);
        const location = new URL(posted.location ?? "");
        state = location.searchParams.get("state") ?? "";
        code = h.authorize(conn.username);

        page = await h.callback(browser, { code, state });
      } finally {
        output.stop();
      }

      expect(confirm.status).toBe(200);
      expectHtml(confirm);
      expect(confirm.text).toContain("connection &quot;acme&quot;");
      // Set by the page, for what is left of the link's 15 minutes (whole seconds: a slow machine
      // may cross a second between the link and the page) plus a state's 15 minutes; the POST
      // sets none.
      expect(bindingCookie).toMatch(
        /^__Host-connect-[A-Za-z0-9_-]{22}=[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/; Secure; HttpOnly; SameSite=Lax$/,
      );
      const maxAge = Number(/Max-Age=(\d+)/.exec(bindingCookie)?.[1]);
      expect(maxAge).toBeGreaterThanOrEqual(1790);
      expect(maxAge).toBeLessThanOrEqual(1800);
      expect(posted.status).toBe(303);
      expectHtml(posted);
      expect(posted.headers.getSetCookie()).toEqual([]);
      const location = new URL(posted.location ?? "");
      expect(location.origin + location.pathname).toBe(`${h.fx.stack.sim.url}/api/oauth2/auth`);
      expect(Object.fromEntries(location.searchParams)).toEqual({
        client_id: CLIENT_ID,
        redirect_uri: `${h.server.url}/callback`,
        response_type: "code",
        state: expect.stringMatching(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/),
        force_login: "0",
      });
      expect(page.status).toBe(200);
      expectHtml(page);
      expect(page.text).toContain(conn.username);
      expect(page.text).toContain("424242");
      // The attempt is over: the callback cleared the browser's cookie.
      expect(page.headers.getSetCookie()).toEqual([
        expect.stringMatching(/^__Host-connect-[A-Za-z0-9_-]{22}=; Max-Age=0;/),
      ]);
      expect(await browser.cookieNames(h.server.url)).toEqual([]);
      expect(await h.record("acme")).toMatchObject({
        status: ChainStatus.Active,
        exactUserName: conn.username,
        division: 424242,
        generation: 1,
      });
      const vended = await h.fx.broker().vend.vend("acme", 30);
      expect(vended.accessToken).toMatch(/^simAT!/);
      // Nothing that grants access appears in the pages or in any log line.
      const signature = new URL(link).searchParams.get("s") ?? "";
      const cookieValue = bindingCookie.split(";")[0]?.split("=")[1] ?? "";
      for (const secret of [
        code,
        encodeURIComponent(code),
        state,
        signature,
        cookieValue,
        LINK_KEY,
        CLIENT_SECRET,
      ]) {
        expect(page.text).not.toContain(secret);
        expect(output.lines.filter((line) => line.includes(secret))).toEqual([]);
      }
      expect(output.lines.some((line) => line.includes("connect flow completed"))).toBe(true);
    });

    it("connects through Exact's login and consent pages, as a person in a browser would", async () => {
      const conn = await h.addConnection("acme", 515151);

      const page = await h.connectInBrowser(await h.link("acme"), conn);

      expect(page.status).toBe(200);
      expect(page.text).toContain(`as ${conn.username} (division 515151)`);
      expect(await h.record("acme")).toMatchObject({ status: ChainStatus.Active, generation: 1 });
      expect((await h.fx.broker().vend.vend("acme", 30)).division).toBe(515151);
    });

    it("takes the connect URL from the connection's redirect URI, and refuses one that does not match it", async () => {
      await h.addConnection("acme");

      const nowMs = h.fx.clock.now();

      const link = await h.flow.createConnectLink({ connectionId: "acme", connectUrl: h.server.url, nowMs });

      expect(link.url.startsWith(`${h.server.url}/start?c=acme&n=`)).toBe(true);
      expect(link.expiresAtEpochSec).toBe(Math.floor(nowMs / 1000) + 15 * 60);
      expect(link.expiresAt).toBe(new Date(link.expiresAtEpochSec * 1000).toISOString());
      await expect(
        h.flow.createConnectLink({ connectionId: "acme", connectUrl: "https://connect.example.com" }),
      ).rejects.toThrow(/redirect URI .*connect\.example\.com\/callback/);
      await expect(h.flow.createConnectLink({ connectionId: "nope" })).rejects.toThrow(ConnectionNotFound);
    });
  });

  describe("bad links", () => {
    it("refuses a link with a changed signature and leaves the real link usable", async () => {
      await h.addConnection("acme");
      const link = new URL(await h.link("acme"));
      const forged = new URL(link);
      const s = link.searchParams.get("s") ?? "";
      forged.searchParams.set("s", (s.startsWith("A") ? "B" : "A") + s.slice(1));

      const page = await new Browser().get(forged.toString());

      expect(page.status).toBe(400);
      expectHtml(page);
      expect(page.text).toContain("This link is not valid");
      expect(page.text).toContain("Reason code: bad_signature.");
      expect(page.location).toBeUndefined();
      // Refusing the forgery claimed nothing: the real link still starts once.
      await h.clickThrough(new Browser(), link.toString());
    });

    it("refuses a posted confirmation whose fields were changed to another connection", async () => {
      await h.addConnection("acme");
      await h.addConnection("victim");
      const browser = new Browser();
      const { action, fields } = formOf(await browser.get(await h.link("acme")));

      const page = await browser.post(action, { ...fields, c: "victim" });

      expect(page.status).toBe(400);
      expect(page.text).toContain("signature does not match");
      expect(page.headers.getSetCookie()).toEqual([]);
      expect((await h.record("victim")).status).toBe(ChainStatus.New);
    });

    it("refuses an expired link (15 minutes) without claiming or changing anything", async () => {
      await h.addConnection("acme");
      const link = await h.link("acme");
      h.fx.clock.advance(15 * 60);
      const before = await h.tableItems();

      const page = await new Browser().get(link);

      expect(page.status).toBe(410);
      expectHtml(page);
      expect(page.text).toContain("This link has expired");
      expect(page.text).toContain("exact-broker connect --id acme");
      expect(await h.tableItems()).toEqual(before);
    });

    it("lets exactly one of several concurrent presses of the button through", async () => {
      await h.addConnection("acme");
      const link = await h.link("acme");
      // Eight browsers that each opened the link (and so hold its cookie) press at once.
      const opened = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const browser = new Browser();
          return { browser, ...formOf(await browser.get(link)) };
        }),
      );

      const pages = await Promise.all(
        opened.map(({ browser, action, fields }) => browser.post(action, fields)),
      );

      expect(pages.map((p) => p.status).sort()).toEqual([303, 410, 410, 410, 410, 410, 410, 410]);
    });

    it("explains a connection whose redirect URI is not this function's /callback, and keeps the link usable", async () => {
      // The fixture's connection was added with https://broker.example.com/callback.
      const link = await h.flow.createConnectLink({
        connectionId: h.fx.conn.connectionId,
        connectUrl: "https://broker.example.com",
      });
      const here = link.url.replace("https://broker.example.com", h.server.url);

      const page = await new Browser().get(here);

      expect(page.status).toBe(409);
      expect(page.text).toContain("redirect URI https://broker.example.com/callback");
      expect(page.text).toContain(`${h.server.url}/callback`);
      expect(page.text).toContain("App Center");
      expect((await h.record(h.fx.conn.connectionId)).status).toBe(ChainStatus.New);
      // Not "already used": the refusal claimed nothing.
      expect((await new Browser().get(here)).status).toBe(409);
    });

    it.each([
      ["no parameters", "/start"],
      ["markup in the parameters", "/start?c=%3Cscript%3E&n=x&e=1&s=y"],
    ])("answers a clear 400 page for %s, echoing nothing", async (_what, path) => {
      const page = await new Browser().get(`${h.server.url}${path}`);

      expect(page.status).toBe(400);
      expectHtml(page);
      expect(page.text).not.toContain("<script>");
      expect(page.text).toContain("Reason code: malformed.");
    });

    it("refuses a confirmation that is not posted as a form", async () => {
      await h.addConnection("acme");
      const { fields } = formOf(await new Browser().get(await h.link("acme")));

      const res = await fetch(`${h.server.url}/start`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(fields),
      });

      expect(res.status).toBe(400);
      expect(await res.text()).toContain("Reason code: malformed.");
    });

    it("answers 404 for unknown paths and 405, with the methods a path takes, for others", async () => {
      const unknown = await new Browser().get(`${h.server.url}/admin`);
      const putStart = await fetch(`${h.server.url}/start`, { method: "PUT", body: "x" });
      const postCallback = await fetch(`${h.server.url}/callback`, { method: "POST", body: "x" });

      expect(unknown.status).toBe(404);
      expectHtml(unknown);
      expect(putStart.status).toBe(405);
      expect(putStart.headers.get("allow")).toBe("GET, HEAD, POST");
      expect(postCallback.status).toBe(405);
      expect(postCallback.headers.get("allow")).toBe("GET");
    });
  });

  describe("bad states", () => {
    it("refuses a state re-pointed at another connection, changing neither", async () => {
      const acme = await h.addConnection("acme");
      await h.addConnection("victim");
      const browser = new Browser();
      const { state } = await h.clickThrough(browser, await h.link("acme"));
      const [payload, mac] = state.split(".");
      const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString("utf8"));
      const forged = `${Buffer.from(JSON.stringify({ ...claims, connectionId: "victim" })).toString("base64url")}.${mac}`;

      const page = await h.callback(browser, { code: h.authorize(acme.username), state: forged });

      expect(page.status).toBe(400);
      expect(page.text).toContain("not valid");
      expect((await h.record("victim")).status).toBe(ChainStatus.New);
      expect((await h.record("acme")).status).toBe(ChainStatus.New);
    });

    it("refuses an expired state (15 minutes after the button)", async () => {
      const conn = await h.addConnection("acme");
      const browser = new Browser();
      const { state } = await h.clickThrough(browser, await h.link("acme"));
      h.fx.clock.advance(15 * 60);

      const page = await h.callback(browser, { code: h.authorize(conn.username), state });

      expect(page.status).toBe(410);
      expect(page.text).toContain("expired");
      expect((await h.record("acme")).status).toBe(ChainStatus.New);
    });

    it("refuses a callback without a state", async () => {
      const conn = await h.addConnection("acme");

      const page = await h.callback(undefined, { code: h.authorize(conn.username) });

      expect(page.status).toBe(400);
      expect((await h.record("acme")).status).toBe(ChainStatus.New);
    });

    it("shows Exact's ?error=access_denied, changes nothing, uses up the state and clears the cookie", async () => {
      const conn = await h.addConnection("acme");
      const browser = new Browser();
      const { state } = await h.clickThrough(browser, await h.link("acme"));

      const page = await h.callback(browser, {
        error: "access_denied",
        error_description: "The user <b>declined</b>",
        state,
      });

      expect(page.status).toBe(400);
      expectHtml(page);
      expect(page.text).toContain("did not authorize");
      expect(page.text).toContain("access_denied");
      expect(page.text).toContain("&lt;b&gt;declined&lt;/b&gt;");
      expect(page.text).toContain("Reason code: exact_declined.");
      expect(await browser.cookieNames(h.server.url)).toEqual([]);
      expect((await h.record("acme")).status).toBe(ChainStatus.New);
      expect((await h.callback(browser, { code: h.authorize(conn.username), state })).status).toBe(410);
    });

    it("shows the refusal when the person declines on Exact's consent page", async () => {
      const conn = await h.addConnection("acme");

      const page = await h.connectInBrowser(await h.link("acme"), conn, "deny");

      expect(page.status).toBe(400);
      expect(page.text).toContain("access_denied");
      expect((await h.record("acme")).status).toBe(ChainStatus.New);
    });

    it("shows a code Exact refuses as a 400 page, not a 500, and clears the cookie", async () => {
      await h.addConnection("acme");
      const browser = new Browser();
      const { state } = await h.clickThrough(browser, await h.link("acme"));

      const page = await h.callback(browser, { code: "not-a-code", state });

      expect(page.status).toBe(400);
      expect(page.text).toContain("Exact Online refused the authorization");
      expect(page.headers.getSetCookie()).toEqual([expect.stringMatching(/^__Host-connect-.*Max-Age=0/)]);
      expect((await h.record("acme")).status).toBe(ChainStatus.New);
    });
  });

  describe("failures after a good state", () => {
    it("answers 503 with Retry-After when Exact's token endpoint is down, and stores nothing", async () => {
      const conn = await h.addConnection("acme");
      const browser = new Browser();
      const { state } = await h.clickThrough(browser, await h.link("acme"));
      h.fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "token", probability: 1 });

      const page = await h.callback(browser, { code: h.authorize(conn.username), state });

      expect(page.status).toBe(503);
      expect(page.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(page.text).toContain("not available");
      expect((await h.record("acme")).status).toBe(ChainStatus.New);
    });

    it("answers 410 when the connection was removed between the button and the callback", async () => {
      const conn = await h.addConnection("acme");
      const browser = new Browser();
      const { state } = await h.clickThrough(browser, await h.link("acme"));
      await h.fx.stack.store().removeConnection(await h.record("acme"));

      const page = await h.callback(browser, { code: h.authorize(conn.username), state });

      expect(page.status).toBe(410);
      expect(page.text).toContain("no longer exists");
    });

    it("answers an event that is not a Function URL event with a 400 page, not an exception", async () => {
      const answer = await h.handler({ rawPath: "/start" } as never, {} as never);

      expect(answer.statusCode).toBe(400);
      expect(answer.headers["Content-Type"]).toBe("text/html; charset=utf-8");
    });
  });

  it("refuses to make a link for a connection that is not in code mode", async () => {
    await h.fx.stack.store().addConnection(
      {
        connectionId: "implicit-one",
        clientId: CLIENT_ID,
        baseUrl: h.fx.stack.sim.url,
        redirectUri: `${h.server.url}/callback`,
        secretId: "exact/implicit-one",
        mode: "implicit",
      },
      h.fx.clock.now(),
    );

    await expect(h.flow.createConnectLink({ connectionId: "implicit-one" })).rejects.toThrow(ValidationError);
  });
});
