import { type HTMLElement, parse } from "node-html-parser";
import { createGuardrails, generate } from "otplib";
import { CookieJar } from "tough-cookie";
import { expect } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import { ALICE, APP } from "./helpers.js";

/** One answer of the simulator, with what the login tests look at. */
export interface PageResponse {
  url: string;
  status: number;
  headers: Headers;
  /** Absolute, resolved against `url`. */
  location: string | undefined;
  text: string;
}

/**
 * A browser without JavaScript: fetch with `redirect: "manual"` and a tough-cookie jar (the
 * library the login driver uses, so the simulator's cookies are tested with it).
 */
export class Browser {
  readonly jar = new CookieJar();

  async get(url: string, headers: Record<string, string> = {}): Promise<PageResponse> {
    return this.send(url, { method: "GET", headers });
  }

  async post(
    url: string,
    form: Record<string, string>,
    headers: Record<string, string> = {},
  ): Promise<PageResponse> {
    return this.send(url, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers },
      body: new URLSearchParams(form).toString(),
    });
  }

  async send(
    url: string,
    init: { method: string; headers: Record<string, string>; body?: string },
  ): Promise<PageResponse> {
    const cookie = await this.jar.getCookieString(url);
    const response = await fetch(url, {
      method: init.method,
      redirect: "manual",
      headers: { ...(cookie === "" ? {} : { Cookie: cookie }), ...init.headers },
      body: init.body,
    });
    for (const setCookie of response.headers.getSetCookie()) {
      await this.jar.setCookie(setCookie, url);
    }
    const location = response.headers.get("location");
    return {
      url,
      status: response.status,
      headers: response.headers,
      location: location === null ? undefined : new URL(location, url).toString(),
      text: await response.text(),
    };
  }

  async cookieNames(url: string): Promise<string[]> {
    return (await this.jar.getCookies(url)).map((cookie) => cookie.key);
  }
}

export function html(response: PageResponse): HTMLElement {
  return parse(response.text);
}

/** A form's action (absolute) and every named input with its value, as a driver posts them. */
export function formOf(
  response: PageResponse,
  selector = "form",
): { action: string; fields: Record<string, string> } {
  const form = html(response).querySelector(selector);
  expect(form, `no ${selector} on ${response.url}`).not.toBeNull();
  const fields: Record<string, string> = {};
  for (const input of form?.querySelectorAll("input") ?? []) {
    const name = input.getAttribute("name");
    if (name !== undefined) fields[name] = input.getAttribute("value") ?? "";
  }
  return { action: new URL(form?.getAttribute("action") ?? "", response.url).toString(), fields };
}

export interface B2cSettings {
  csrf: string;
  transId: string;
  hosts: { tenant: string; policy: string };
}

/** `var SETTINGS = {…};` of the B2C page, or undefined when the page has none. */
export function settingsOf(response: PageResponse): Partial<B2cSettings> | undefined {
  const match = /var SETTINGS = (\{.*?\});/s.exec(response.text);
  return match?.[1] === undefined ? undefined : JSON.parse(match[1]);
}

/** The step 5 and 6 URLs, built as B2C's JavaScript (and the contract) does. */
export function b2cUrls(
  b2cPage: PageResponse,
  settings: B2cSettings,
): { selfAsserted: string; confirmed: string } {
  const base = `${new URL(b2cPage.url).origin}${settings.hosts.tenant}`;
  const tail = `tx=${settings.transId}&p=${settings.hosts.policy}`;
  return {
    selfAsserted: `${base}/SelfAsserted?${tail}`,
    confirmed: `${base}/api/CombinedSigninAndSignup/confirmed?rememberMe=false&csrf_token=${settings.csrf}&${tail}`,
  };
}

const GUARDRAILS = createGuardrails({ MIN_SECRET_BYTES: 10 });

/** The TOTP code of the step the sim clock is in (the simulator checks at sim time). */
export function totpAt(sim: Simulator, secret = ALICE.totpSecret, offsetSeconds = 0): Promise<string> {
  return generate({ secret, epoch: Math.floor(sim.nowMs() / 1000) + offsetSeconds, guardrails: GUARDRAILS });
}

export interface AuthParams {
  app?: { clientId: string; redirectUris: string[] };
  responseType?: string;
  state?: string;
  forceLogin?: boolean;
  redirectUri?: string;
}

export function authUrl(sim: Simulator, params: AuthParams = {}): string {
  const app = params.app ?? APP;
  const query = new URLSearchParams({
    client_id: app.clientId,
    redirect_uri: params.redirectUri ?? app.redirectUris[0] ?? "",
    response_type: params.responseType ?? "code",
    state: params.state ?? "st-123",
  });
  if (params.forceLogin) query.set("force_login", "1");
  return `${sim.url}/api/oauth2/auth?${query}`;
}

export interface Credentials {
  username: string;
  password: string;
  /** Where the default `totp` comes from. @default ALICE's */
  totpSecret?: string;
  /** @default the current step's code of `totpSecret` */
  totp?: string;
}

/** The B2C page reached from a login redirect: steps 2 to 4. */
export async function openB2cPage(
  browser: Browser,
  loginUrl: string,
  username: string,
): Promise<{ page: PageResponse; settings: B2cSettings }> {
  const start = await browser.get(loginUrl);
  expect(start.status).toBe(200);
  const { action, fields } = formOf(start);
  const posted = await browser.post(action, { ...fields, LoginForm$UserName: username });
  expect(posted.status, posted.text).toBe(302);
  const page = await browser.get(posted.location ?? "");
  expect(page.status).toBe(200);
  return { page, settings: settingsOf(page) as B2cSettings };
}

export function postSelfAsserted(
  browser: Browser,
  page: PageResponse,
  settings: B2cSettings,
  credentials: { username: string; password: string; totp: string },
  headers: Record<string, string> = { "X-CSRF-TOKEN": settings.csrf, "X-Requested-With": "XMLHttpRequest" },
): Promise<PageResponse> {
  return browser.post(
    b2cUrls(page, settings).selfAsserted,
    {
      request_type: "RESPONSE",
      signInName: credentials.username,
      password: credentials.password,
      totpVerificationCode: credentials.totp,
    },
    headers,
  );
}

export type LoginResult =
  | { ok: true; response: PageResponse }
  // biome-ignore lint/suspicious/noExplicitAny: B2C's JSON is inspected field by field
  | { ok: false; selfAsserted: any };

/** Steps 2 to 7 from a redirect to the login page: the 302 back to the auth request, or B2C's error. */
export async function logIn(
  sim: Simulator,
  browser: Browser,
  loginUrl: string,
  credentials: Credentials,
): Promise<LoginResult> {
  const { page, settings } = await openB2cPage(browser, loginUrl, credentials.username);
  const totp = credentials.totp ?? (await totpAt(sim, credentials.totpSecret));
  const asserted = await postSelfAsserted(browser, page, settings, { ...credentials, totp });
  expect(asserted.status).toBe(200);
  const body = JSON.parse(asserted.text);
  if (body.status !== "200") {
    return { ok: false, selfAsserted: body };
  }
  const confirmed = await browser.get(b2cUrls(page, settings).confirmed);
  expect(confirmed.status, confirmed.text).toBe(200);
  const { action, fields } = formOf(confirmed);
  const signedIn = await browser.post(action, fields);
  expect(signedIn.status, signedIn.text).toBe(302);
  return { ok: true, response: signedIn };
}

export interface FlowResult {
  /** "login" when the login pages were gone through, "consent" when the consent page showed. */
  steps: string[];
  /** The final redirect to the redirect URI. */
  location: string;
}

function isLoginRedirect(sim: Simulator, response: PageResponse): boolean {
  return response.status === 302 && (response.location ?? "").startsWith(`${sim.url}/docs/Login.aspx?`);
}

/** The whole flow, as the login driver will run it: auth request, login if asked, consent if shown. */
export async function authorizeViaPages(
  sim: Simulator,
  browser: Browser,
  params: AuthParams = {},
  credentials: Credentials = ALICE,
): Promise<FlowResult> {
  const steps: string[] = [];
  let response = await browser.get(authUrl(sim, params));
  if (isLoginRedirect(sim, response)) {
    steps.push("login");
    const result = await logIn(sim, browser, response.location ?? "", credentials);
    if (!result.ok) {
      throw new Error(`login refused: ${JSON.stringify(result.selfAsserted)}`);
    }
    response = await browser.get(result.response.location ?? "");
  }
  if (response.status === 200) {
    steps.push("consent");
    const { action, fields } = formOf(response);
    response = await browser.post(action, { ...fields, consent: "allow" });
  }
  expect(response.status, response.text).toBe(302);
  return { steps, location: response.location ?? "" };
}

/** The OAuth parameters of a redirect: the query for a code, the fragment for a token. */
export function redirectParams(location: string): { query: URLSearchParams; fragment: URLSearchParams } {
  const url = new URL(location);
  return { query: url.searchParams, fragment: new URLSearchParams(url.hash.slice(1)) };
}
