import { setCookie } from "./cookies.js";
import type { Answer } from "./http.js";
import { badRequestPage, page, redirect } from "./login-answers.js";
import { startPage } from "./login-pages.js";
import { type LoginRequest, readForm, repeatedParam } from "./login-request.js";
import { COOKIES, EXACT_B2C_CLIENT_ID, LOGIN_PATHS } from "./login-urls.js";
import type { Simulation } from "./simulation.js";
import { newOpaqueId } from "./tokens.js";

/**
 * Exact's side of the login: the start page (`/docs/Login.aspx`), the user-name post that hands
 * over to B2C, and `signin-azureb2c`, where B2C's answer comes back and the session starts.
 */

const START_FIELDS = ["__RequestVerificationToken", "LoginForm$UserName"] as const;
const SIGNIN_FIELDS = ["state", "code", "id_token"] as const;
/** A cookie value the simulator could have set; anything else gets a new one. */
const ANTIFORGERY_COOKIE = /^[A-Za-z0-9_-]{16,128}$/;

/**
 * The page to return to after the login. Only local paths: a ReturnUrl pointing elsewhere
 * (`//evil.example`, `/\evil.example`) would make the login an open redirect.
 */
function returnUrlOf(request: LoginRequest): string | undefined {
  const values = request.query.getAll("ReturnUrl");
  const value = values.length === 1 ? values[0] : undefined;
  if (value === undefined || !value.startsWith("/") || value.startsWith("//") || value.startsWith("/\\")) {
    return undefined;
  }
  return value;
}

const BAD_RETURN_URL = "ReturnUrl is missing or not a local URL.";

/** `GET /docs/Login.aspx?ReturnUrl=…`: the start page, and the cookie half of its antiforgery pair. */
export function serveStartPage(sim: Simulation, request: LoginRequest): Answer {
  const returnUrl = returnUrlOf(request);
  if (returnUrl === undefined) {
    return badRequestPage(BAD_RETURN_URL);
  }
  const held = request.cookies.get(COOKIES.antiforgery);
  const cookie = held !== undefined && ANTIFORGERY_COOKIE.test(held) ? held : newOpaqueId();
  const html = startPage(
    {
      // Relative, as Exact's: it resolves against /docs/.
      action: `Login.aspx?ReturnUrl=${encodeURIComponent(returnUrl)}`,
      token: sim.login.antiforgery.formToken("login", cookie),
    },
    sim.faults.takePageBreak("start"),
  );
  return page(html, [setCookie(COOKIES.antiforgery, cookie)]);
}

/**
 * `POST /docs/Login.aspx?ReturnUrl=…`: the user name. Any name goes on to B2C, known or not, so
 * the page cannot be used to find out which users exist; the password step tells.
 */
export function serveUserNamePost(sim: Simulation, request: LoginRequest): Answer {
  const returnUrl = returnUrlOf(request);
  if (returnUrl === undefined) {
    return badRequestPage(BAD_RETURN_URL);
  }
  const form = readForm(request);
  if (typeof form === "string") {
    return badRequestPage(form);
  }
  const repeated = repeatedParam(form, START_FIELDS);
  if (repeated !== undefined) {
    return badRequestPage(`Field ${repeated} given more than once.`);
  }
  const token = form.get("__RequestVerificationToken") ?? undefined;
  if (!sim.login.antiforgery.check("login", request.cookies.get(COOKIES.antiforgery), token)) {
    return badRequestPage("The antiforgery token is missing or invalid.");
  }
  const username = form.get("LoginForm$UserName")?.trim() ?? "";
  if (username === "") {
    return badRequestPage("Enter your user name.");
  }
  const flow = sim.login.startFlow(returnUrl, username);
  const b2cQuery = new URLSearchParams({
    client_id: EXACT_B2C_CLIENT_ID,
    redirect_uri: `${request.origin}${LOGIN_PATHS.signin}`,
    response_type: "code id_token",
    response_mode: "form_post",
    scope: "openid",
    state: flow.id,
    login_hint: username,
  });
  return redirect(`${request.origin}${LOGIN_PATHS.b2cAuthorize}?${b2cQuery}`);
}

/**
 * `POST /signin-azureb2c`: B2C's one-time code, its id_token and the flow's state, as the
 * confirmed page posted them. The code is used up by any attempt. Success starts a session and
 * continues with the auth request the login started from.
 */
export function serveSignin(sim: Simulation, request: LoginRequest): Answer {
  const form = readForm(request);
  if (typeof form === "string") {
    return badRequestPage(form);
  }
  const repeated = repeatedParam(form, SIGNIN_FIELDS);
  if (repeated !== undefined) {
    return badRequestPage(`Field ${repeated} given more than once.`);
  }
  const flow = sim.login.flow(form.get("state") ?? undefined);
  if (flow === undefined) {
    return badRequestPage("Unknown or already used sign-in state.");
  }
  const code = sim.login.takeB2cCode(form.get("code") ?? undefined);
  if (
    code === undefined ||
    code.flow !== flow ||
    code.idToken !== form.get("id_token") ||
    sim.clock.nowMs() >= code.expiresAtMs
  ) {
    return badRequestPage("The sign-in response is invalid or expired.");
  }
  const session = sim.login.startSession(flow, code.user);
  return redirect(`${request.origin}${flow.returnUrl}`, [setCookie(COOKIES.session, session.id)]);
}
