import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createGuardrails, generate } from "otplib";

/**
 * A minimal Exact login flow on 127.0.0.1, written from /tmp/login-contract.md (the contract
 * between lib/sim and the login driver), for testing the driver before and apart from the
 * simulator. It checks what a real server would (antiforgery token and cookie, csrf header and
 * cookie, every hidden input posted back, the session cookie) and records every request.
 */

export interface FakeUser {
  readonly username: string;
  readonly password: string;
  readonly totpSecret: string;
}

export type FakePage = "start" | "b2c" | "confirmed" | "consent";

export interface FakeExactOptions {
  readonly users: readonly FakeUser[];
  readonly clientId: string;
  /** @default `${url}/callback` */
  readonly redirectUri?: string;
  /** Epoch ms for TOTP checks. @default Date.now */
  readonly now?: () => number;
  /** Show the consent page the first time a user authorizes. @default false */
  readonly consentRequired?: boolean;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}

interface Transaction {
  username: string;
  returnUrl: string;
  csrf?: string;
  authenticated?: boolean;
  signInCode?: string;
}

export const TENANT = "/login.exact.com/exactonlineb2c.onmicrosoft.com/B2C_1A_SignIn";
const POLICY = "B2C_1A_SignIn";
const GUARDRAILS = createGuardrails({ MIN_SECRET_BYTES: 10 });
const random = (): string => randomBytes(12).toString("base64url");

export class FakeExact {
  readonly requests: RecordedRequest[] = [];
  /** Every cookie, csrf value, code and token handed out, for leak checks. */
  readonly issued: string[] = [];
  readonly outcomes: string[] = [];
  /** Serve a page without the named input (or SETTINGS key, "SETTINGS", "form"). */
  readonly breaks: Partial<Record<FakePage, string>> = {};
  /** Where the user-name post redirects to for the B2C page; a test may point it at another origin. */
  b2cOrigin: string;
  tamperState = false;
  finalError: string | undefined;
  /** Answer this path (lower case) with HTTP 503. */
  failPath: string | undefined;
  /** The start page redirects to itself. */
  loopLogin = false;
  url: string;
  redirectUri: string;

  readonly #server: Server;
  readonly #options: FakeExactOptions;
  readonly #now: () => number;
  readonly #transactions = new Map<string, Transaction>();
  readonly #sessions = new Map<string, string>();
  readonly #consented = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #lastStep = new Map<string, number>();
  readonly #antiforgery = new Set<string>();

  private constructor(server: Server, options: FakeExactOptions) {
    this.#server = server;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.url = "";
    this.b2cOrigin = "";
    this.redirectUri = "";
  }

  static async start(options: FakeExactOptions): Promise<FakeExact> {
    const server = createServer();
    const fake = new FakeExact(server, options);
    server.on("request", (req, res) => {
      fake.#handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    fake.b2cOrigin = fake.url;
    fake.redirectUri = options.redirectUri ?? `${fake.url}/callback`;
    return fake;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  /** Requests to `path` (lower case, no query). */
  requestsTo(path: string): RecordedRequest[] {
    return this.requests.filter((request) => request.path.toLowerCase() === path.toLowerCase());
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", this.url);
    const path = url.pathname.toLowerCase();
    this.requests.push({
      method: req.method ?? "",
      path,
      query: url.searchParams,
      headers: req.headers,
      body,
    });
    const cookies = parseCookies(req.headers.cookie);
    const form = new URLSearchParams(body);
    const route = `${req.method} ${path}`;
    if (path === this.failPath) return send(res, 503, "busy");

    if (route === "GET /api/oauth2/auth" || route === "POST /api/oauth2/auth") {
      return this.#authorize(res, url, cookies, route.startsWith("POST") ? form : undefined);
    }
    if (route === "GET /docs/login.aspx") {
      return this.loopLogin ? redirect(res, `${url.pathname}${url.search}`) : this.#startPage(res, url);
    }
    if (route === "POST /docs/login.aspx") return this.#userName(res, url, cookies, form);
    if (route === `GET ${TENANT.toLowerCase()}/oauth2/v2.0/authorize`) return this.#b2cPage(res, url);
    if (route === `POST ${TENANT.toLowerCase()}/selfasserted`)
      return this.#selfAsserted(res, req, url, cookies, form);
    if (route === `GET ${TENANT.toLowerCase()}/api/combinedsigninandsignup/confirmed`) {
      return this.#confirmed(res, url, cookies);
    }
    if (route === "POST /signin-azureb2c") return this.#signIn(res, form);
    send(res, 404, "not found");
  }

  #authorize(
    res: ServerResponse,
    url: URL,
    cookies: Map<string, string>,
    consentForm?: URLSearchParams,
  ): undefined {
    const q = url.searchParams;
    if (q.get("client_id") !== this.#options.clientId || q.get("redirect_uri") !== this.redirectUri) {
      return send(res, 400, "<html><body>Unknown client or redirect URI</body></html>");
    }
    const username = this.#sessions.get(cookies.get(".AspNet.Cookies") ?? "");
    if (q.get("force_login") === "1" || !username) {
      const rest = new URLSearchParams(q);
      rest.delete("force_login");
      return redirect(res, `/docs/Login.aspx?ReturnUrl=${encodeURIComponent(`${url.pathname}?${rest}`)}`);
    }
    const consentKey = `${q.get("client_id")}/${username}`;
    if (consentForm) {
      if (consentForm.get("consent") !== "allow" || consentForm.get("__consentToken") !== "ct-1") {
        return send(res, 400, "bad consent post");
      }
      this.#consented.add(consentKey);
    }
    if (this.#options.consentRequired && !this.#consented.has(consentKey)) {
      const button =
        this.breaks.consent === "consent"
          ? ""
          : '<button type="submit" name="consent" value="allow">Allow</button>';
      return send(
        res,
        200,
        page(`<form method="post" action="${escapeAttribute(`${url.pathname}${url.search}`)}">
          <input type="hidden" name="__consentToken" value="ct-1">
          ${button}<button type="submit" name="consent" value="deny">Deny</button></form>`),
      );
    }
    this.outcomes.push("authorized");
    const state = this.tamperState ? "not-the-state" : (q.get("state") ?? "");
    if (this.finalError) {
      return redirect(res, `${this.redirectUri}?error=${this.finalError}&state=${encodeURIComponent(state)}`);
    }
    if (q.get("response_type") === "token") {
      const token = `fakeAT!${random()}`;
      this.issued.push(token);
      return redirect(
        res,
        `${this.redirectUri}#access_token=${exactEncode(token)}&token_type=bearer&expires_in=600&state=${encodeURIComponent(state)}`,
      );
    }
    const code = `fakeAC!${random()}`;
    this.issued.push(code);
    redirect(res, `${this.redirectUri}?code=${exactEncode(code)}&state=${encodeURIComponent(state)}`);
  }

  #startPage(res: ServerResponse, url: URL): undefined {
    const token = random();
    this.#antiforgery.add(token);
    this.issued.push(token);
    const missing = this.breaks.start;
    const inputs = [
      `<input type="hidden" name="__RequestVerificationToken" value="${token}">`,
      '<input type="hidden" name="__EVENTVALIDATION" value="ev&amp;1">',
      '<input type="text" name="LoginForm$UserName" value="">',
      '<input type="checkbox" name="LoginForm$RememberMe">',
    ].filter((input) => !missing || !input.includes(`name="${missing}"`));
    res.setHeader("Set-Cookie", `__RequestVerificationToken_L2RvY3M1=${token}; Path=/docs; HttpOnly`);
    send(
      res,
      200,
      page(`<div class="login"><form method="post" action="Login.aspx?ReturnUrl=${escapeAttribute(encodeURIComponent(url.searchParams.get("ReturnUrl") ?? ""))}">
        <table><tr><td>${inputs.join("</td><td>")}</td></tr></table>
        <input type="submit" name="LoginForm$btnNext" value="Next"></form></div>
        <form action="/search"><input name="q"></form>`),
    );
  }

  #userName(res: ServerResponse, url: URL, cookies: Map<string, string>, form: URLSearchParams): undefined {
    const token = form.get("__RequestVerificationToken");
    const allPosted =
      form.get("__EVENTVALIDATION") === "ev&1" &&
      form.get("LoginForm$btnNext") === "Next" &&
      !form.has("LoginForm$RememberMe") &&
      !form.has("q");
    if (!token || cookies.get("__RequestVerificationToken_L2RvY3M1") !== token || !allPosted) {
      return send(res, 400, "antiforgery or form check failed");
    }
    const tx = random();
    this.#transactions.set(tx, {
      username: form.get("LoginForm$UserName") ?? "",
      returnUrl: url.searchParams.get("ReturnUrl") ?? "/",
    });
    redirect(res, `${this.b2cOrigin}${TENANT}/oauth2/v2.0/authorize?client_id=exact-b2c&tx=${tx}`);
  }

  #b2cPage(res: ServerResponse, url: URL): undefined {
    const tx = this.#transactions.get(url.searchParams.get("tx") ?? "");
    if (!tx) return send(res, 400, "no transaction");
    tx.csrf = random();
    this.issued.push(tx.csrf);
    const missing = this.breaks.b2c;
    const settings: Record<string, unknown> = {
      remoteResource: "https://example.invalid/signin.html",
      csrf: tx.csrf,
      transId: `StateProperties=${url.searchParams.get("tx")}`,
      hosts: { tenant: TENANT, policy: POLICY, static: "https://example.invalid/" },
      locale: { lang: "en" },
      text: 'a } brace and a "quote" in a string',
    };
    if (missing) delete settings[missing];
    const inputs = ["signInName", "password", "totpVerificationCode"]
      .filter((name) => name !== missing)
      .map(
        (name) => `<input type="${name === "password" ? "password" : "text"}" name="${name}" id="${name}">`,
      );
    res.setHeader("Set-Cookie", `x-ms-cpim-csrf=${tx.csrf}; Path=/; HttpOnly`);
    const script =
      missing === "SETTINGS" ? "" : `<script>var SETTINGS = ${JSON.stringify(settings)};</script>`;
    send(
      res,
      200,
      page(
        `${script}<form id="localAccountForm" action="#" onSubmit="return false;">${inputs.join("")}</form>`,
      ),
    );
  }

  async #selfAsserted(
    res: ServerResponse,
    req: IncomingMessage,
    url: URL,
    cookies: Map<string, string>,
    form: URLSearchParams,
  ): Promise<void> {
    const txId = (url.searchParams.get("tx") ?? "").replace(/^StateProperties=/, "");
    const tx = this.#transactions.get(txId);
    const csrf = req.headers["x-csrf-token"];
    if (
      !tx?.csrf ||
      csrf !== tx.csrf ||
      cookies.get("x-ms-cpim-csrf") !== tx.csrf ||
      url.searchParams.get("p") !== POLICY ||
      req.headers["x-requested-with"] !== "XMLHttpRequest" ||
      form.get("request_type") !== "RESPONSE"
    ) {
      return send(res, 400, "csrf check failed");
    }
    const user = this.#options.users.find((candidate) => candidate.username === form.get("signInName"));
    const key = form.get("signInName") ?? "";
    const fail = (outcome: string, errorCode: string, message: string): void => {
      this.outcomes.push(outcome);
      if (outcome !== "locked") this.#failures.set(key, (this.#failures.get(key) ?? 0) + 1);
      sendJson(res, { status: "400", errorCode, message });
    };
    if ((this.#failures.get(key) ?? 0) >= 5) {
      return fail("locked", "AADB2C90092", "Your account is temporarily locked to prevent unauthorized use.");
    }
    if (!user || form.get("password") !== user.password) {
      return fail("bad_password", "AADB2C90225", "Your password is incorrect.");
    }
    const step = Math.floor(this.#now() / 30_000);
    const expected = await generate({
      secret: user.totpSecret,
      epoch: Math.floor(this.#now() / 1000),
      guardrails: GUARDRAILS,
    });
    if (form.get("totpVerificationCode") !== expected) {
      return fail("bad_totp", "AADB2C90151", "The verification code you entered is invalid.");
    }
    if (step <= (this.#lastStep.get(key) ?? -1)) {
      return fail("totp_reused", "AADB2C90151", "The verification code you entered is invalid.");
    }
    this.#lastStep.set(key, step);
    this.#failures.set(key, 0);
    tx.authenticated = true;
    this.outcomes.push("success");
    sendJson(res, { status: "200" });
  }

  /** Locks `username` as five failures in a row would. */
  lock(username: string): void {
    this.#failures.set(username, 5);
  }

  #confirmed(res: ServerResponse, url: URL, cookies: Map<string, string>): undefined {
    const txId = (url.searchParams.get("tx") ?? "").replace(/^StateProperties=/, "");
    const tx = this.#transactions.get(txId);
    if (
      !tx?.authenticated ||
      url.searchParams.get("csrf_token") !== tx.csrf ||
      cookies.get("x-ms-cpim-csrf") !== tx.csrf
    ) {
      return send(res, 400, "not authenticated");
    }
    tx.signInCode = random();
    this.issued.push(tx.signInCode);
    const missing = this.breaks.confirmed;
    const inputs = [
      ["state", `st-${txId}`],
      ["code", tx.signInCode],
      ["id_token", `idt-${txId}`],
    ]
      .filter(([name]) => name !== missing)
      .map(([name, value]) => `<input type="hidden" name="${name}" value="${value}">`);
    const action = missing === "form" ? `${this.url}/elsewhere` : `${this.url}/signin-azureb2c`;
    send(
      res,
      200,
      page(`<form id="auto" method="post" action="${action}">${inputs.join("")}</form>
        <script>document.getElementById("auto").submit();</script>`),
    );
  }

  #signIn(res: ServerResponse, form: URLSearchParams): undefined {
    const txId = (form.get("state") ?? "").replace(/^st-/, "");
    const tx = this.#transactions.get(txId);
    if (!tx?.signInCode || form.get("code") !== tx.signInCode || form.get("id_token") !== `idt-${txId}`) {
      return send(res, 400, "bad sign-in post");
    }
    const sid = random();
    this.issued.push(sid);
    this.#sessions.set(sid, tx.username);
    this.#transactions.delete(txId);
    res.setHeader("Set-Cookie", `.AspNet.Cookies=${sid}; Path=/; HttpOnly`);
    redirect(res, tx.returnUrl);
  }
}

/** Exact's encoding of codes and tokens: `!` as %21, which encodeURIComponent leaves alone. */
function exactEncode(value: string): string {
  return encodeURIComponent(value).replace(/!/g, "%21");
}

function page(body: string): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Exact</title></head><body>${body}</body></html>`;
}

function escapeAttribute(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/"/g, "&quot;");
}

function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const at = part.indexOf("=");
    if (at > 0) cookies.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  return cookies;
}

function send(res: ServerResponse, status: number, body: string): undefined {
  res.writeHead(status, { "content-type": "text/html; charset=utf-8" }).end(body);
}

function sendJson(res: ServerResponse, body: unknown): undefined {
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
}

function redirect(res: ServerResponse, location: string): undefined {
  res.writeHead(302, { location }).end();
}
