/**
 * Logs in to Exact Online through "One Exact Identity" (Azure AD B2C at login.exact.com) over
 * plain HTTP, and authorizes an app: the fallback when a refresh-token chain is lost.
 *
 * ASSUMPTIONS ABOUT EXACT'S PAGES. These change without notice; when a login fails with
 * LoginPageNotUnderstood, its message names the step below ("step "b2c page": no input named
 * "signInName"") and this list says what the driver expected there.
 *
 *  1. "auth request": GET {base}/api/oauth2/auth?client_id&redirect_uri&response_type
 *     (code|token)&state&force_login=1. Without a session Exact redirects (any 3xx, followed
 *     with GET, at most 15 hops) to the start page. `force_login=1`: a fresh cookie jar has no
 *     session, but should Exact ever keep one by other means, a stale session must not skip the
 *     credential check; a login that succeeds without checking the password would hide a
 *     changed password until the day the session is gone.
 *  2. "start page": HTTP 200 with a <form> holding inputs named `LoginForm$UserName` and
 *     `__RequestVerificationToken` (ASP.NET antiforgery, with its cookie). The form's `action`
 *     (relative or absolute; absent = the page itself) and `method` are used as a browser
 *     would. Legacy accounts whose start form asks for `LoginForm$Password` are not handled.
 *  3. "user name": the driver submits ALL controls of that form (hidden ones, the first named
 *     submit button) with `LoginForm$UserName` filled. Exact redirects to the B2C authorize page.
 *     An unknown user is not refused here (no user enumeration): it fails at step 5.
 *  4. "b2c page": HTTP 200 on https://login.exact.com (the simulator: its own origin) with
 *     - an inline script `var SETTINGS = {...};` whose JSON has strings `csrf`, `transId`,
 *       `hosts.tenant` (a path such as `/exactonlineb2c.onmicrosoft.com/B2C_1A_SignIn`) and
 *       `hosts.policy`; and a cookie `x-ms-cpim-csrf` (kept by the jar, not read);
 *     - one <form> with inputs named `signInName`, `password` and `totpVerificationCode`.
 *  5. "credentials": POST {origin of step 4}{hosts.tenant}/SelfAsserted?tx={transId}&p={policy}
 *     (as B2C's own JavaScript builds it) with headers `X-CSRF-TOKEN: {csrf}` and
 *     `X-Requested-With: XMLHttpRequest`, body: all controls of that form plus
 *     `request_type=RESPONSE` and the three fields filled. Exact answers HTTP 200 with JSON
 *     `{"status":"200"}` on success, else `{"status":"400","errorCode":…}`:
 *       AADB2C90225 password incorrect, AADB2C90054 invalid user name or password,
 *       AADB2C99002 no such user          -> LoginBadCredentials
 *       AADB2C90151 verification code invalid (wrong, or used before)  -> LoginBadTotp
 *       AADB2C90092 account temporarily locked                          -> LoginLocked
 *     Any other code, a non-JSON body or another status is LoginPageNotUnderstood.
 *     The TOTP code is RFC 6238, SHA-1, 6 digits, 30 s steps; Exact refuses a code of a step the
 *     same user already logged in with (from any app), so a step at or before `lastTotpStep` is
 *     never used: the driver waits for the next one (and for the next one too when fewer than
 *     2 s of the current step remain), then claims it with `claimTotpStep` before generating the
 *     code; a step another login of the user claimed is skipped like a used one.
 *  6. "confirmed": GET {origin}{hosts.tenant}/api/CombinedSigninAndSignup/confirmed
 *     ?rememberMe=false&csrf_token={csrf}&tx={transId}&p={policy} -> "confirmed page": HTTP 200
 *     with a <form> whose action's path ends in `/signin-azureb2c` (on the Exact base URL),
 *     holding an input named `state` and one named `code` or `id_token` (OpenID Connect
 *     form_post). Its auto-submitting script is not run: the driver posts the form itself.
 *  7. "signin-azureb2c": POST ALL controls of that form to its action. Exact sets its session
 *     cookie and redirects back to the auth request of step 1, which now either redirects to
 *     the redirect URI (step 8) or shows
 *     "consent page" (first authorization of this app by this user): HTTP 200 with a <form>
 *     holding a submit button named `consent` with value `allow`; "consent": the driver posts
 *     all controls of that form plus `consent=allow` to its action.
 *  8. "final redirect": the first redirect whose URL has the registered redirect URI's origin
 *     and path ends the login; it is never requested. response_type=code:
 *     `?code=<URL-encoded, Exact sends %21 for !>&state=`; response_type=token: fragment
 *     `#access_token=…&token_type=bearer&expires_in=<seconds, a string>&state=`. An `error`
 *     parameter or a `state` other than the one sent is LoginPageNotUnderstood.
 *
 * Security rules that do not depend on Exact's pages: requests go only to the base URL's origin
 * and https://login.exact.com (a redirect or form action elsewhere is refused before anything
 * is sent), one cookie jar per login, and no error message holds a password, TOTP secret or
 * code, cookie, code or token.
 */
import { randomBytes } from "node:crypto";
import { ValidationError } from "../../errors.js";
import { checkBaseUrl } from "../base-url.js";
import { type HttpSend, sendHttp } from "../http.js";
import {
  encodeForm,
  type FormControl,
  formPairs,
  type HtmlForm,
  parseForms,
  readScriptObject,
} from "./html-forms.js";
import type { LoginDriver, LoginRequest, LoginResult } from "./login-driver.js";
import { LoginBadCredentials, LoginBadTotp, LoginLocked } from "./login-errors.js";
import { type Landing, LoginSession, type PageRequest } from "./login-session.js";
import { totpCodeForStep } from "./totp.js";
import { totpStepAt, totpWaitMs } from "./totp-steps.js";

/** Where B2C serves the sign-in pages for Exact; the password may go nowhere else but the base URL. */
export const ONE_EXACT_IDENTITY_ORIGIN = "https://login.exact.com";

const STEP = {
  authRequest: "auth request",
  startPage: "start page",
  userName: "user name",
  b2cPage: "b2c page",
  totp: "totp",
  credentials: "credentials",
  confirmed: "confirmed",
  confirmedPage: "confirmed page",
  signIn: "signin-azureb2c",
  consentPage: "consent page",
  consent: "consent",
  finalRedirect: "final redirect",
} as const;

type B2cOutcome = "bad_credentials" | "bad_totp" | "locked";

const B2C_ERROR_CODES: Readonly<Record<string, B2cOutcome>> = {
  AADB2C90225: "bad_credentials",
  AADB2C90054: "bad_credentials",
  AADB2C99002: "bad_credentials",
  AADB2C90151: "bad_totp",
  AADB2C90092: "locked",
};

const CONSENT_BUTTON: FormControl = { name: "consent", value: "allow" };

/**
 * Retry-After for a TOTP failure with no wait of its own to report: one 30 s step, after which
 * the clock has reached an unused step, and a modest pause for a claim store that failed.
 */
const TOTP_RETRY_AFTER_SECONDS = 30;

interface B2cSettings {
  readonly csrf: string;
  readonly transId: string;
  readonly tenant: string;
  readonly policy: string;
}

export interface OneExactIdentityDriverOptions {
  /** @default sendHttp (a fresh connection per request) */
  readonly send?: HttpSend;
  /** Epoch ms; picks the TOTP step and measures the login's budget. @default Date.now */
  readonly now?: () => number;
  /** Waits for the next TOTP step. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Admits a loopback base URL (the simulator), as `checkBaseUrl` does. @default false */
  readonly allowLoopback?: boolean;
}

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The login driver for Exact's One Exact Identity flow; see the assumptions at the top of this file. */
export class OneExactIdentityDriver implements LoginDriver {
  readonly #send: HttpSend;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #allowLoopback: boolean;

  constructor(options: OneExactIdentityDriverOptions = {}) {
    this.#send = options.send ?? sendHttp;
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? realSleep;
    this.#allowLoopback = options.allowLoopback ?? false;
  }

  /** Throws ValidationError for a bad request, a LoginError subclass for a failed login. */
  async login(request: LoginRequest): Promise<LoginResult> {
    const baseUrl = checkBaseUrl(request.baseUrl, this.#allowLoopback);
    const redirectUri = parseRedirectUri(request.redirectUri);
    await checkCredentials(request);
    const session = new LoginSession({
      send: this.#send,
      now: this.#now,
      timeoutMs: request.timeoutMs,
      allowedOrigins: [baseUrl, ONE_EXACT_IDENTITY_ORIGIN],
      redirectUri,
    });
    const state = randomBytes(24).toString("base64url");
    const authUrl = new URL(`${baseUrl}/api/oauth2/auth`);
    authUrl.search = new URLSearchParams({
      client_id: request.clientId,
      redirect_uri: request.redirectUri,
      response_type: request.responseType,
      state,
      force_login: "1",
    }).toString();

    const startPage = expectPage(
      session,
      STEP.authRequest,
      await session.navigate(STEP.authRequest, get(authUrl)),
    );
    const loginForm = requireForm(session, STEP.startPage, startPage.body, [
      "LoginForm$UserName",
      "__RequestVerificationToken",
    ]);
    const b2cPage = expectPage(
      session,
      STEP.userName,
      await session.navigate(
        STEP.userName,
        submit(session, STEP.userName, loginForm, startPage.url, {
          LoginForm$UserName: request.credentials.username,
        }),
      ),
    );

    const settings = readB2cSettings(session, b2cPage.body);
    const b2cForm = requireForm(session, STEP.b2cPage, b2cPage.body, [
      "signInName",
      "password",
      "totpVerificationCode",
    ]);
    await this.#postCredentials(session, request, b2cPage.url.origin, settings, b2cForm);

    const confirmedUrl = tenantUrl(b2cPage.url.origin, settings, "/api/CombinedSigninAndSignup/confirmed", {
      rememberMe: "false",
      csrf_token: settings.csrf,
    });
    const confirmedPage = expectPage(
      session,
      STEP.confirmed,
      await session.navigate(STEP.confirmed, get(confirmedUrl)),
    );
    const signInForm = findSignInForm(session, confirmedPage);
    let landing = await session.navigate(
      STEP.signIn,
      submit(session, STEP.signIn, signInForm, confirmedPage.url, {}),
    );

    if (landing.kind === "page") {
      const consentForm = parseForms(landing.body).find((form) => hasSubmitter(form, CONSENT_BUTTON));
      if (!consentForm) {
        throw session.notUnderstood(
          STEP.consentPage,
          `neither the redirect to redirect_uri nor a form with a submit button named "consent" with value "allow"`,
        );
      }
      landing = await session.navigate(
        STEP.consent,
        submit(session, STEP.consent, consentForm, landing.url, {}, CONSENT_BUTTON),
      );
      if (landing.kind === "page") {
        throw session.notUnderstood(STEP.consent, "expected the redirect to redirect_uri, got a page");
      }
    }
    return readFinalRedirect(session, landing.url, request.responseType, state);
  }

  async #postCredentials(
    session: LoginSession,
    request: LoginRequest,
    origin: string,
    settings: B2cSettings,
    form: HtmlForm,
  ): Promise<void> {
    const { step, code } = await this.#nextTotp(session, request);
    const selfAsserted = tenantUrl(origin, settings, "/SelfAsserted", {});
    const body = encodeForm(
      formPairs(form, {
        request_type: "RESPONSE",
        signInName: request.credentials.username,
        password: request.credentials.password,
        totpVerificationCode: code,
      }),
    );
    // From here on Exact may have consumed the code: every error carries its step.
    session.totpStep = step;
    const answer = await session.exchange(STEP.credentials, {
      method: "POST",
      url: selfAsserted,
      headers: {
        "x-csrf-token": settings.csrf,
        "x-requested-with": "XMLHttpRequest",
        accept: "application/json, text/javascript, */*; q=0.01",
      },
      body,
    });
    if (answer.status !== 200) {
      const hint = answer.status === 400 ? " (the csrf header or cookie was refused?)" : "";
      throw session.notUnderstood(STEP.credentials, `HTTP ${answer.status}${hint}`);
    }
    const result = parseJsonObject(answer.body);
    if (!result) throw session.notUnderstood(STEP.credentials, "the answer is not a JSON object");
    if (result.status === "200") return;
    const errorCode = typeof result.errorCode === "string" ? result.errorCode : "";
    const shown = /^[A-Za-z0-9]{1,32}$/.test(errorCode) ? errorCode : "none";
    const options = session.errorOptions();
    switch (B2C_ERROR_CODES[errorCode]) {
      case "bad_credentials":
        throw new LoginBadCredentials(
          STEP.credentials,
          `Exact refused the user name or password (${shown})`,
          options,
        );
      case "bad_totp":
        throw new LoginBadTotp(STEP.credentials, `Exact refused the verification code (${shown})`, options);
      case "locked":
        throw new LoginLocked(STEP.credentials, `Exact has locked the account for now (${shown})`, options);
      default:
        throw session.notUnderstood(
          STEP.credentials,
          `status "${sanitize(result.status)}" with error code ${shown}`,
        );
    }
  }

  /**
   * Waits, if needed, for a TOTP step after `lastTotpStep`, claims it, and returns that step and
   * its code. A step the claim refuses (another login of this user took it) is treated as used:
   * the driver waits for the next one and claims again, until the login's budget cannot cover
   * the wait (LoginUnavailable). Nothing is sent to Exact in here, so every error leaves the
   * code unspent.
   */
  async #nextTotp(session: LoginSession, request: LoginRequest): Promise<{ step: number; code: string }> {
    let usedStep = request.lastTotpStep;
    let givenUp = "";
    for (;;) {
      const waitMs = totpWaitMs(this.#now(), usedStep);
      if (waitMs > 0) {
        if (waitMs >= session.remainingMs()) {
          throw session.unavailable(
            STEP.totp,
            `${givenUp}the next unused TOTP step starts in ${waitMs} ms, after the login's deadline`,
            Math.ceil(waitMs / 1000),
          );
        }
        await this.#sleep(waitMs);
      }
      const step = totpStepAt(this.#now());
      if (usedStep !== undefined && step <= usedStep) {
        throw session.unavailable(
          STEP.totp,
          "the clock has not reached an unused TOTP step",
          TOTP_RETRY_AFTER_SECONDS,
        );
      }
      const claimed = await this.#claimTotpStep(session, request, step);
      // A slow claim may return when the step is about to end: its code could then reach Exact
      // in the next step and be refused, a refusal that counts towards the lock.
      if (claimed && isUsableStep(this.#now(), step)) {
        return { step, code: await totpCodeForStep(request.credentials.totpSecret, step) };
      }
      usedStep = step;
      givenUp = claimed
        ? `TOTP step ${step} ran out while it was claimed; `
        : `another login of this user took TOTP step ${step}; `;
    }
  }

  async #claimTotpStep(session: LoginSession, request: LoginRequest, step: number): Promise<boolean> {
    try {
      return await request.claimTotpStep(step);
    } catch (error) {
      // The claim store failed before any code or password was sent: like Exact being out of
      // reach, retryable and no attempt at Exact. Wrapped so the caller sees a LoginError it
      // acts on (retry later, no step spent, not counted as a failed login) rather than an
      // unknown error it would count as one; never as bad credentials.
      throw session.unavailable(
        STEP.totp,
        `could not claim TOTP step ${step} for this user`,
        TOTP_RETRY_AFTER_SECONDS,
        error instanceof Error ? error : undefined,
      );
    }
  }
}

function parseRedirectUri(raw: string): URL {
  try {
    return new URL(raw);
  } catch {
    throw new ValidationError("redirect URI is not an absolute URL");
  }
}

/** Refuses, before any request, what would only earn a failed attempt (and count towards a lock). */
async function checkCredentials(request: LoginRequest): Promise<void> {
  const { username, password, totpSecret } = request.credentials;
  if (!username || !password) {
    throw new LoginBadCredentials(STEP.credentials, "the stored user name or password is empty");
  }
  try {
    await totpCodeForStep(totpSecret, 0);
  } catch {
    // otplib's message quotes the secret's characters: no cause.
    throw new LoginBadTotp(STEP.totp, "the stored TOTP secret is not base32 of at least 10 bytes");
  }
}

/** `step` is the current step at `nowMs` and is not about to end (see TOTP_STEP_END_MARGIN_MS). */
function isUsableStep(nowMs: number, step: number): boolean {
  return totpStepAt(nowMs) === step && totpWaitMs(nowMs, step - 1) === 0;
}

function get(url: URL): PageRequest {
  return { method: "GET", url };
}

function expectPage(
  session: LoginSession,
  step: string,
  landing: Landing,
): Extract<Landing, { kind: "page" }> {
  if (landing.kind === "page") return landing;
  const error =
    landing.url.searchParams.get("error") ?? new URLSearchParams(landing.url.hash.slice(1)).get("error");
  throw session.notUnderstood(
    step,
    `Exact redirected to redirect_uri before the login finished${error ? ` (error "${sanitize(error)}")` : ""}`,
  );
}

function requireForm(session: LoginSession, step: string, html: string, names: readonly string[]): HtmlForm {
  const [first = "", ...rest] = names;
  const form = parseForms(html).find((candidate) => candidate.names.has(first));
  if (!form) throw session.notUnderstood(step, `no input named "${first}"`);
  const missing = rest.find((name) => !form.names.has(name));
  if (missing) throw session.notUnderstood(step, `no input named "${missing}" in the form with "${first}"`);
  return form;
}

function submit(
  session: LoginSession,
  step: string,
  form: HtmlForm,
  pageUrl: URL,
  fill: Readonly<Record<string, string>>,
  submitter?: FormControl,
): PageRequest {
  let url: URL;
  try {
    url = new URL(form.action ?? "", pageUrl);
  } catch {
    throw session.notUnderstood(step, "the form's action is not a URL");
  }
  const encoded = encodeForm(formPairs(form, fill, submitter ?? form.submitters[0]));
  if (form.method === "GET") {
    url.search = encoded;
    return { method: "GET", url };
  }
  return { method: "POST", url, body: encoded };
}

function hasSubmitter(form: HtmlForm, wanted: FormControl): boolean {
  return form.submitters.some((button) => button.name === wanted.name && button.value === wanted.value);
}

function readB2cSettings(session: LoginSession, html: string): B2cSettings {
  const settings = readScriptObject(html, /\bvar\s+SETTINGS\s*=\s*/);
  if (!settings) throw session.notUnderstood(STEP.b2cPage, 'no script with "var SETTINGS = {…}" (JSON)');
  const hosts = settings.hosts as Record<string, unknown> | undefined;
  const values = {
    csrf: settings.csrf,
    transId: settings.transId,
    "hosts.tenant": typeof hosts === "object" && hosts !== null ? hosts.tenant : undefined,
    "hosts.policy": typeof hosts === "object" && hosts !== null ? hosts.policy : undefined,
  };
  for (const [key, value] of Object.entries(values)) {
    if (typeof value !== "string" || value === "") {
      throw session.notUnderstood(STEP.b2cPage, `SETTINGS has no "${key}"`);
    }
  }
  const tenant = values["hosts.tenant"] as string;
  if (!tenant.startsWith("/") || tenant.startsWith("//")) {
    throw session.notUnderstood(STEP.b2cPage, 'SETTINGS "hosts.tenant" is not a path');
  }
  return {
    csrf: values.csrf as string,
    transId: values.transId as string,
    tenant: tenant.replace(/\/+$/, ""),
    policy: values["hosts.policy"] as string,
  };
}

function tenantUrl(origin: string, settings: B2cSettings, path: string, extra: Record<string, string>): URL {
  const url = new URL(`${origin}${settings.tenant}${path}`);
  url.search = new URLSearchParams({ ...extra, tx: settings.transId, p: settings.policy }).toString();
  return url;
}

function findSignInForm(session: LoginSession, page: Extract<Landing, { kind: "page" }>): HtmlForm {
  const form = parseForms(page.body).find((candidate) => {
    try {
      return new URL(candidate.action ?? "", page.url).pathname.toLowerCase().endsWith("/signin-azureb2c");
    } catch {
      return false;
    }
  });
  if (!form) throw session.notUnderstood(STEP.confirmedPage, 'no form posting to "/signin-azureb2c"');
  if (!form.names.has("state")) {
    throw session.notUnderstood(
      STEP.confirmedPage,
      'no input named "state" in the form posting to /signin-azureb2c',
    );
  }
  if (!form.names.has("code") && !form.names.has("id_token")) {
    throw session.notUnderstood(
      STEP.confirmedPage,
      'no input named "code" or "id_token" in the form posting to /signin-azureb2c',
    );
  }
  return form;
}

function readFinalRedirect(
  session: LoginSession,
  url: URL,
  responseType: LoginRequest["responseType"],
  state: string,
): LoginResult {
  const totpStep = session.totpStep;
  if (totpStep === undefined) {
    throw session.notUnderstood(STEP.finalRedirect, "reached redirect_uri without sending credentials");
  }
  const params = responseType === "code" ? url.searchParams : new URLSearchParams(url.hash.slice(1));
  const error = params.get("error") ?? url.searchParams.get("error");
  if (error) throw session.notUnderstood(STEP.finalRedirect, `Exact answered error "${sanitize(error)}"`);
  if (params.get("state") !== state) {
    throw session.notUnderstood(STEP.finalRedirect, 'the "state" parameter is not the one this login sent');
  }
  if (responseType === "code") {
    const code = params.get("code");
    if (!code) throw session.notUnderstood(STEP.finalRedirect, 'no "code" parameter');
    return { kind: "code", code, totpStep };
  }
  const accessToken = params.get("access_token");
  if (!accessToken) throw session.notUnderstood(STEP.finalRedirect, 'no "access_token" in the fragment');
  const expiresIn = params.get("expires_in") ?? "";
  if (!/^\d{1,7}$/.test(expiresIn) || Number(expiresIn) === 0) {
    throw session.notUnderstood(STEP.finalRedirect, 'no positive whole "expires_in" in the fragment');
  }
  return { kind: "token", accessToken, expiresInSeconds: Number(expiresIn), totpStep };
}

function parseJsonObject(body: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Exact's error words in a message: short, and nothing that could carry a secret. */
function sanitize(value: unknown): string {
  const text = String(value);
  return /^[A-Za-z0-9_.-]{1,40}$/.test(text) ? text : "unreadable";
}
