import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { ConnectionNotFound, ValidationError } from "../../lib/errors.js";
import { createConnectHandler } from "../../lib/handlers/connect-handler.js";
import { type FunctionUrlServer, startFunctionUrlServer } from "../../lib/local/function-url-server.js";
import { createLogger } from "../../lib/log/logger.js";
import { type ConnectFlow, createConnectFlow } from "../../lib/onboarding/connect-flow.js";
import { createLinkKeySource } from "../../lib/onboarding/link-key-source.js";
import type { ConnectionSecret } from "../../lib/secrets/connection-secret.js";
import { Browser, formOf, logIn, type PageResponse } from "../sim/login-helpers.js";
import { type Fixture, startFixture } from "../support/fixture.js";

const LINK_KEY_ID = "exact-broker/link-signing-key";
const LINK_KEY = "link-key-sEcReT-0123456789abcdefghijklmnopqrstuv";
const CLIENT_ID = "connect-app";
const CLIENT_SECRET = "cs-sEcReT-connect-app-0123456789";
const TOTP_SECRET = "JBSWY3DPEHPK3PXP";

interface Page {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
}

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

describe("connect flow through the Function URL handler", () => {
  let fx: Fixture;
  let server: FunctionUrlServer;
  let flow: ConnectFlow;
  let handler: ReturnType<typeof createConnectHandler>;
  let users = 0;

  beforeEach(async () => {
    fx = await startFixture({ seed: false });
    const logger = createLogger({ serviceName: "connect" });
    const env = { ...fx.stack.env, LINK_SIGNING_SECRET_ID: LINK_KEY_ID };
    // writeSecret is typed for connection secrets; the link key is a plain string.
    fx.stack.writeSecret(LINK_KEY_ID, LINK_KEY as unknown as ConnectionSecret);
    const broker = fx.broker({ log: logger });
    const keys = createLinkKeySource(env);
    handler = createConnectHandler({ broker, keys, logger, dynamo: fx.stack.dynamo.client });
    server = await startFunctionUrlServer(handler);
    flow = createConnectFlow(broker, { keys, dynamo: fx.stack.dynamo.client });
    fx.stack.sim.addApp({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      redirectUris: [`${server.url}/callback`],
    });
  });
  afterEach(async () => {
    await server?.close();
    await fx?.close();
  });

  /** A code connection whose redirect URI is this server's /callback, and an Exact user for it. */
  async function addConnection(connectionId: string, division = 424242) {
    users += 1;
    const username = `user-${users}@example.com`;
    const password = `pw-sEcReT-${users}-0123456789`;
    fx.stack.sim.addUser({ username, password, totpSecret: TOTP_SECRET, division });
    const secretId = `exact/${connectionId}`;
    fx.stack.writeSecret(secretId, { clientSecret: CLIENT_SECRET });
    await fx.stack.store().addConnection(
      {
        connectionId,
        clientId: CLIENT_ID,
        baseUrl: fx.stack.sim.url,
        redirectUri: `${server.url}/callback`,
        secretId,
        mode: "code",
      },
      fx.clock.now(),
    );
    return { connectionId, username, password, division };
  }

  /**
   * A person in a browser: opens the link, logs in at the simulator's Exact pages (user name,
   * password, TOTP), answers the consent page, and follows Exact's redirect to /callback.
   */
  async function connectInBrowser(
    link: string,
    user: { readonly username: string; readonly password: string },
    consent: "allow" | "deny" = "allow",
  ): Promise<PageResponse> {
    const browser = new Browser();
    const start = await browser.get(link);
    expect(start.status).toBe(302);
    let response = await browser.get(start.location ?? "");
    if (response.status === 302 && (response.location ?? "").includes("/docs/Login.aspx")) {
      const login = await logIn(fx.stack.sim, browser, response.location ?? "", {
        ...user,
        totpSecret: TOTP_SECRET,
      });
      if (!login.ok) throw new Error("the simulator refused the login");
      response = await browser.get(login.response.location ?? "");
    }
    if (response.status === 200) {
      const { action, fields } = formOf(response);
      response = await browser.post(action, { ...fields, consent });
    }
    expect(response.status).toBe(302);
    expect(response.location?.startsWith(`${server.url}/callback?`)).toBe(true);
    return browser.get(response.location ?? "");
  }

  async function get(url: string): Promise<Page> {
    const res = await fetch(url, { redirect: "manual" });
    return { status: res.status, headers: res.headers, body: await res.text() };
  }

  /** Opens a link like a browser and returns the state from the redirect to Exact. */
  async function openLink(url: string): Promise<string> {
    const page = await get(url);
    expect(page.status).toBe(302);
    const state = new URL(page.headers.get("location") ?? "").searchParams.get("state");
    if (!state) throw new Error("no state in the redirect to Exact");
    return state;
  }

  /** What Exact does after the user logged in and consented: a code for our redirect URI. */
  function authorize(username: string): string {
    return fx.stack.sim.authorize({ clientId: CLIENT_ID, username, redirectUri: `${server.url}/callback` });
  }

  function callback(params: Record<string, string>): Promise<Page> {
    return get(`${server.url}/callback?${new URLSearchParams(params)}`);
  }

  const record = async (connectionId: string) => {
    const found = await fx.stack.store().get(connectionId);
    if (!found) throw new Error(`connection ${connectionId} is gone`);
    return found;
  };

  function expectHtml(page: Page): void {
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("cache-control")).toBe("no-store");
  }

  describe("happy path", () => {
    it("connects the chain, names the Exact user and division, and a vend then works", async () => {
      const conn = await addConnection("acme", 424242);
      const output = captureOutput();
      let link: string;
      let state: string;
      let code: string;
      let page: Page;
      try {
        link = (await flow.createConnectLink({ connectionId: "acme" })).url;
        const start = await get(link);
        expect(start.status).toBe(302);
        expectHtml(start);
        const location = new URL(start.headers.get("location") ?? "");
        expect(location.origin + location.pathname).toBe(`${fx.stack.sim.url}/api/oauth2/auth`);
        expect(Object.fromEntries(location.searchParams)).toEqual({
          client_id: CLIENT_ID,
          redirect_uri: `${server.url}/callback`,
          response_type: "code",
          state: expect.stringMatching(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/),
          force_login: "0",
        });
        state = location.searchParams.get("state") ?? "";
        code = authorize(conn.username);

        page = await callback({ code, state });
      } finally {
        output.stop();
      }

      expect(page.status).toBe(200);
      expectHtml(page);
      expect(page.body).toContain(conn.username);
      expect(page.body).toContain("424242");
      expect(page.body).toContain("acme");
      expect(await record("acme")).toMatchObject({
        status: ChainStatus.Active,
        exactUserName: conn.username,
        division: 424242,
        generation: 1,
      });
      const vended = await fx.broker().vend.vend("acme", 30);
      expect(vended.accessToken).toMatch(/^simAT!/);
      // Nothing that grants access appears in the pages or in any log line.
      const signature = new URL(link).searchParams.get("s") ?? "";
      for (const secret of [code, encodeURIComponent(code), state, signature, LINK_KEY, CLIENT_SECRET]) {
        expect(page.body).not.toContain(secret);
        expect(output.lines.filter((line) => line.includes(secret))).toEqual([]);
      }
      expect(output.lines.some((line) => line.includes("connect flow completed"))).toBe(true);
    });

    it("connects through Exact's login and consent pages, as a person in a browser would", async () => {
      const conn = await addConnection("acme", 515151);
      const link = await flow.createConnectLink({ connectionId: "acme" });

      const page = await connectInBrowser(link.url, conn);

      expect(page.status).toBe(200);
      expect(page.text).toContain(`as ${conn.username} (division 515151)`);
      expect(await record("acme")).toMatchObject({ status: ChainStatus.Active, generation: 1 });
      expect((await fx.broker().vend.vend("acme", 30)).division).toBe(515151);
    });

    it("takes the connect URL from the connection's redirect URI, and refuses one that does not match it", async () => {
      await addConnection("acme");

      const nowMs = fx.clock.now();

      const link = await flow.createConnectLink({ connectionId: "acme", connectUrl: server.url, nowMs });

      expect(link.url.startsWith(`${server.url}/start?c=acme&n=`)).toBe(true);
      expect(link.expiresAtEpochSec).toBe(Math.floor(nowMs / 1000) + 15 * 60);
      expect(link.expiresAt).toBe(new Date(link.expiresAtEpochSec * 1000).toISOString());
      await expect(
        flow.createConnectLink({ connectionId: "acme", connectUrl: "https://connect.example.com" }),
      ).rejects.toThrow(/redirect URI .*connect\.example\.com\/callback/);
      await expect(flow.createConnectLink({ connectionId: "nope" })).rejects.toThrow(ConnectionNotFound);
    });
  });

  describe("bad links", () => {
    it("refuses a link with a changed signature and leaves the real link usable", async () => {
      await addConnection("acme");
      const link = new URL((await flow.createConnectLink({ connectionId: "acme" })).url);
      const forged = new URL(link);
      const s = link.searchParams.get("s") ?? "";
      forged.searchParams.set("s", (s.startsWith("A") ? "B" : "A") + s.slice(1));

      const page = await get(forged.toString());

      expect(page.status).toBe(400);
      expectHtml(page);
      expect(page.body).toContain("This link is not valid");
      expect(page.headers.get("location")).toBeNull();
      // Refusing the forgery claimed nothing: the real link still opens once.
      expect((await get(link.toString())).status).toBe(302);
    });

    it("refuses a link pointed at another connection", async () => {
      await addConnection("acme");
      await addConnection("victim");
      const link = new URL((await flow.createConnectLink({ connectionId: "acme" })).url);
      link.searchParams.set("c", "victim");

      const page = await get(link.toString());

      expect(page.status).toBe(400);
      expect(page.body).toContain("signature does not match");
    });

    it("refuses an expired link (15 minutes) without claiming or changing anything", async () => {
      await addConnection("acme");
      const link = await flow.createConnectLink({ connectionId: "acme" });
      fx.clock.advance(15 * 60);

      const page = await get(link.url);

      expect(page.status).toBe(410);
      expectHtml(page);
      expect(page.body).toContain("This link has expired");
      expect(page.body).toContain("exact-broker connect --id acme");
      expect((await record("acme")).status).toBe(ChainStatus.New);
    });

    it("opens a link once: the second opening is refused", async () => {
      await addConnection("acme");
      const link = await flow.createConnectLink({ connectionId: "acme" });
      await openLink(link.url);

      const again = await get(link.url);

      expect(again.status).toBe(410);
      expect(again.body).toContain("This link was already used");
      expect(again.headers.get("location")).toBeNull();
    });

    it("lets exactly one of several concurrent openings through", async () => {
      await addConnection("acme");
      const link = await flow.createConnectLink({ connectionId: "acme" });

      const pages = await Promise.all(Array.from({ length: 8 }, () => get(link.url)));

      expect(pages.map((p) => p.status).sort()).toEqual([302, 410, 410, 410, 410, 410, 410, 410]);
    });

    it("explains a connection whose redirect URI is not this function's /callback, and keeps the link usable", async () => {
      // The fixture's connection was added with https://broker.example.com/callback.
      const link = await flow.createConnectLink({
        connectionId: fx.conn.connectionId,
        connectUrl: "https://broker.example.com",
      });
      const here = link.url.replace("https://broker.example.com", server.url);

      const page = await get(here);

      expect(page.status).toBe(409);
      expect(page.body).toContain("redirect URI https://broker.example.com/callback");
      expect(page.body).toContain(`${server.url}/callback`);
      expect(page.body).toContain("App Center");
      expect((await record(fx.conn.connectionId)).status).toBe(ChainStatus.New);
      // Not "already used": the refusal claimed nothing.
      expect((await get(here)).status).toBe(409);
    });

    it.each([
      ["no parameters", "/start"],
      ["markup in the parameters", "/start?c=%3Cscript%3E&n=x&e=1&s=y"],
    ])("answers a clear 400 page for %s, echoing nothing", async (_what, path) => {
      const page = await get(`${server.url}${path}`);

      expect(page.status).toBe(400);
      expectHtml(page);
      expect(page.body).not.toContain("<script>");
    });

    it("answers 404 for unknown paths and 405 for other methods", async () => {
      const unknown = await get(`${server.url}/admin`);
      const post = await fetch(`${server.url}/start`, { method: "POST", body: "x" });

      expect(unknown.status).toBe(404);
      expectHtml(unknown);
      expect(post.status).toBe(405);
      expect(post.headers.get("allow")).toBe("GET");
    });
  });

  describe("bad states", () => {
    it("uses a state once: a second callback with it is refused and changes nothing", async () => {
      const conn = await addConnection("acme");
      const state = await openLink((await flow.createConnectLink({ connectionId: "acme" })).url);
      expect((await callback({ code: authorize(conn.username), state })).status).toBe(200);

      const replay = await callback({ code: authorize(conn.username), state });

      expect(replay.status).toBe(410);
      expectHtml(replay);
      expect(replay.body).toContain("This link was already used");
      expect((await record("acme")).generation).toBe(1);
    });

    it("refuses a state re-pointed at another connection, changing neither", async () => {
      const acme = await addConnection("acme");
      await addConnection("victim");
      const state = await openLink((await flow.createConnectLink({ connectionId: "acme" })).url);
      const [payload, mac] = state.split(".");
      const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString("utf8"));
      const forged = `${Buffer.from(JSON.stringify({ ...claims, connectionId: "victim" })).toString("base64url")}.${mac}`;

      const page = await callback({ code: authorize(acme.username), state: forged });

      expect(page.status).toBe(400);
      expect(page.body).toContain("not valid");
      expect((await record("victim")).status).toBe(ChainStatus.New);
      expect((await record("acme")).status).toBe(ChainStatus.New);
    });

    it("refuses an expired state (15 minutes after /start)", async () => {
      const conn = await addConnection("acme");
      const state = await openLink((await flow.createConnectLink({ connectionId: "acme" })).url);
      fx.clock.advance(15 * 60);

      const page = await callback({ code: authorize(conn.username), state });

      expect(page.status).toBe(410);
      expect(page.body).toContain("expired");
      expect((await record("acme")).status).toBe(ChainStatus.New);
    });

    it("refuses a callback without a state", async () => {
      const conn = await addConnection("acme");

      const page = await callback({ code: authorize(conn.username) });

      expect(page.status).toBe(400);
      expect((await record("acme")).status).toBe(ChainStatus.New);
    });

    it("shows Exact's ?error=access_denied, changes nothing, and uses up the state", async () => {
      const conn = await addConnection("acme");
      const state = await openLink((await flow.createConnectLink({ connectionId: "acme" })).url);

      const page = await callback({
        error: "access_denied",
        error_description: "The user <b>declined</b>",
        state,
      });

      expect(page.status).toBe(400);
      expectHtml(page);
      expect(page.body).toContain("did not authorize");
      expect(page.body).toContain("access_denied");
      expect(page.body).toContain("&lt;b&gt;declined&lt;/b&gt;");
      expect((await record("acme")).status).toBe(ChainStatus.New);
      expect((await callback({ code: authorize(conn.username), state })).status).toBe(410);
    });

    it("shows the refusal when the person declines on Exact's consent page", async () => {
      const conn = await addConnection("acme");
      const link = await flow.createConnectLink({ connectionId: "acme" });

      const page = await connectInBrowser(link.url, conn, "deny");

      expect(page.status).toBe(400);
      expect(page.text).toContain("access_denied");
      expect((await record("acme")).status).toBe(ChainStatus.New);
    });

    it("shows a code Exact refuses as a 400 page, not a 500", async () => {
      await addConnection("acme");
      const state = await openLink((await flow.createConnectLink({ connectionId: "acme" })).url);

      const page = await callback({ code: "not-a-code", state });

      expect(page.status).toBe(400);
      expect(page.body).toContain("Exact Online refused the authorization");
      expect((await record("acme")).status).toBe(ChainStatus.New);
    });
  });

  describe("failures after a good state", () => {
    it("answers 503 with Retry-After when Exact's token endpoint is down, and stores nothing", async () => {
      const conn = await addConnection("acme");
      const state = await openLink((await flow.createConnectLink({ connectionId: "acme" })).url);
      fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "token", probability: 1 });

      const page = await callback({ code: authorize(conn.username), state });

      expect(page.status).toBe(503);
      expect(page.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(page.body).toContain("not available");
      expect((await record("acme")).status).toBe(ChainStatus.New);
    });

    it("answers 410 when the connection was removed between /start and the callback", async () => {
      const conn = await addConnection("acme");
      const state = await openLink((await flow.createConnectLink({ connectionId: "acme" })).url);
      await fx.stack.store().removeConnection(await record("acme"));

      const page = await callback({ code: authorize(conn.username), state });

      expect(page.status).toBe(410);
      expect(page.body).toContain("no longer exists");
    });

    it("answers an event that is not a Function URL event with a 400 page, not an exception", async () => {
      const answer = await handler({ rawPath: "/start" } as never, {} as never);

      expect(answer.statusCode).toBe(400);
      expect(answer.headers["Content-Type"]).toBe("text/html; charset=utf-8");
    });
  });

  describe("duplicate Exact user", () => {
    it("sends the tokens to the connection that holds the user and says so; the other stays unconnected", async () => {
      const first = await addConnection("first");
      await addConnection("second");
      const firstState = await openLink((await flow.createConnectLink({ connectionId: "first" })).url);
      expect((await callback({ code: authorize(first.username), state: firstState })).status).toBe(200);
      const secondState = await openLink((await flow.createConnectLink({ connectionId: "second" })).url);

      // The person behind "second" logs in as the user "first" already holds.
      const page = await callback({ code: authorize(first.username), state: secondState });

      expect(page.status).toBe(409);
      expectHtml(page);
      expect(page.body).toContain(`${first.username} is already connected as connection &quot;first&quot;`);
      expect(page.body).toContain("&quot;second&quot; is still not connected");
      expect(await record("first")).toMatchObject({ status: ChainStatus.Active, generation: 2 });
      expect((await record("second")).status).toBe(ChainStatus.New);
      expect((await fx.broker().vend.vend("first", 30)).generation).toBe(2);
    });
  });

  it("refuses to make a link for a connection that is not in code mode", async () => {
    await fx.stack.store().addConnection(
      {
        connectionId: "implicit-one",
        clientId: CLIENT_ID,
        baseUrl: fx.stack.sim.url,
        redirectUri: `${server.url}/callback`,
        secretId: "exact/implicit-one",
        mode: "implicit",
      },
      fx.clock.now(),
    );

    await expect(flow.createConnectLink({ connectionId: "implicit-one" })).rejects.toThrow(ValidationError);
  });
});
