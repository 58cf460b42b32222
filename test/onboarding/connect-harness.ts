import { ScanCommand } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { expect } from "vitest";
import type { ChainRecord } from "../../lib/chain/chain-record.js";
import { createConnectHandler } from "../../lib/handlers/connect-handler.js";
import { type FunctionUrlServer, startFunctionUrlServer } from "../../lib/local/function-url-server.js";
import { createLogger } from "../../lib/log/logger.js";
import { type ConnectFlow, createConnectFlow } from "../../lib/onboarding/connect-flow.js";
import { createLinkKeySource } from "../../lib/onboarding/link-key-source.js";
import type { ConnectionSecret } from "../../lib/secrets/connection-secret.js";
import { Browser, formOf, logIn, type PageResponse } from "../sim/login-helpers.js";
import { type Fixture, startFixture } from "../support/fixture.js";

export const LINK_KEY_ID = "exact-broker/link-signing-key";
export const LINK_KEY = "link-key-sEcReT-0123456789abcdefghijklmnopqrstuv";
export const CLIENT_ID = "connect-app";
export const CLIENT_SECRET = "cs-sEcReT-connect-app-0123456789";
const TOTP_SECRET = "JBSWY3DPEHPK3PXP";

/** An Exact user for a connection of the connect app. */
export interface ConnectUser {
  readonly connectionId: string;
  readonly username: string;
  readonly password: string;
  readonly division: number;
}

/** What {@link ConnectHarness.clickThrough} leaves: Exact's authorization URL and its state. */
export interface Started {
  readonly location: string;
  readonly state: string;
}

/**
 * The connect function as deployed, over real HTTP: its handler behind the local Function URL
 * server, dynalite, and the Exact simulator with one app whose redirect URI is this server's
 * `/callback`. Browsers are fetch with a cookie jar (tough-cookie), so the `__Host-` cookie
 * comes and goes as in a browser.
 */
export interface ConnectHarness {
  readonly fx: Fixture;
  readonly server: FunctionUrlServer;
  readonly flow: ConnectFlow;
  readonly handler: ReturnType<typeof createConnectHandler>;
  /** A code connection whose redirect URI is this server's /callback, and an Exact user for it. */
  addConnection(connectionId: string, division?: number): Promise<ConnectUser>;
  /** A fresh one-time link, as `exact-broker connect` prints it. */
  link(connectionId: string): Promise<string>;
  /**
   * A person's click: opens the link (the confirmation page, which sets the binding cookie),
   * presses its button (the POST, which the browser's jar sends the cookie with), and returns
   * the redirect to Exact.
   */
  clickThrough(browser: Browser, link: string): Promise<Started>;
  /** Exact's redirect back, in `browser` (with its cookies), or with no cookies at all. */
  callback(browser: Browser | undefined, params: Record<string, string>): Promise<PageResponse>;
  /** What Exact does after the user logged in and consented: a code for our redirect URI. */
  authorize(username: string): string;
  /**
   * The whole way in a browser: the link, its button, Exact's login and consent pages, and
   * Exact's redirect to /callback.
   */
  connectInBrowser(link: string, user: ConnectUser, consent?: "allow" | "deny"): Promise<PageResponse>;
  record(connectionId: string): Promise<ChainRecord>;
  /** Every item of the broker's table, sorted by key: "changes nothing" is this staying equal. */
  tableItems(): Promise<Array<Record<string, unknown>>>;
  /** Requests Exact's token endpoint received, whatever their outcome. */
  tokenCalls(): number;
  close(): Promise<void>;
}

export async function startConnectHarness(): Promise<ConnectHarness> {
  const fx = await startFixture({ seed: false });
  const logger = createLogger({ serviceName: "connect" });
  const env = { ...fx.stack.env, LINK_SIGNING_SECRET_ID: LINK_KEY_ID };
  // writeSecret is typed for connection secrets; the link key is a plain string.
  fx.stack.writeSecret(LINK_KEY_ID, LINK_KEY as unknown as ConnectionSecret);
  const broker = fx.broker({ log: logger });
  const keys = createLinkKeySource(env);
  const handler = createConnectHandler({ broker, keys, logger, dynamo: fx.stack.dynamo.client });
  const server = await startFunctionUrlServer(handler);
  const flow = createConnectFlow(broker, { keys, dynamo: fx.stack.dynamo.client });
  const callbackUrl = `${server.url}/callback`;
  fx.stack.sim.addApp({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [callbackUrl] });
  let users = 0;

  const authorize = (username: string) =>
    fx.stack.sim.authorize({ clientId: CLIENT_ID, username, redirectUri: callbackUrl });

  async function clickThrough(browser: Browser, link: string): Promise<Started> {
    const page = await browser.get(link);
    expect(page.status).toBe(200);
    const { action, fields } = formOf(page);
    expect(await browser.cookieNames(server.url)).toContain(`__Host-connect-${fields.n}`);
    const posted = await browser.post(action, fields);
    expect(posted.status).toBe(303);
    const location = posted.location ?? "";
    const state = new URL(location).searchParams.get("state");
    if (!state) throw new Error("no state in the redirect to Exact");
    return { location, state };
  }

  function callback(browser: Browser | undefined, params: Record<string, string>): Promise<PageResponse> {
    return (browser ?? new Browser()).get(`${callbackUrl}?${new URLSearchParams(params)}`);
  }

  return {
    fx,
    server,
    flow,
    handler,
    async addConnection(connectionId, division = 424242) {
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
          redirectUri: callbackUrl,
          secretId,
          mode: "code",
        },
        fx.clock.now(),
      );
      return { connectionId, username, password, division };
    },
    async link(connectionId) {
      return (await flow.createConnectLink({ connectionId })).url;
    },
    clickThrough,
    callback,
    authorize,
    async connectInBrowser(link, user, consent = "allow") {
      const browser = new Browser();
      const { location } = await clickThrough(browser, link);
      let response = await browser.get(location);
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
      expect(response.location?.startsWith(`${callbackUrl}?`)).toBe(true);
      return browser.get(response.location ?? "");
    },
    async record(connectionId) {
      const found = await fx.stack.store().get(connectionId);
      if (!found) throw new Error(`connection ${connectionId} is gone`);
      return found;
    },
    async tableItems() {
      const out = await fx.stack.dynamo.client.send(
        new ScanCommand({ TableName: fx.stack.tableName, ConsistentRead: true }),
      );
      return (out.Items ?? [])
        .map((item) => unmarshall(item))
        .sort((a, b) => String(a.pk).localeCompare(String(b.pk)));
    },
    tokenCalls() {
      // Every request counts under exactly one outcome; `issued` repeats two of them.
      const { issued, ...outcomes } = fx.stack.sim.stats().totals.tokenRequests;
      return Object.values(outcomes).reduce((sum, n) => sum + n, 0);
    },
    async close() {
      await server.close();
      await fx.close();
    },
  };
}
