import type { Answer } from "./http.js";
import { badRequestPage, page, redirect } from "./login-answers.js";
import { consentPage } from "./login-pages.js";
import { type LoginRequest, readForm, repeatedParam } from "./login-request.js";
import { COOKIES, LOGIN_PATHS } from "./login-urls.js";
import type { Simulation } from "./simulation.js";
import type { App, User } from "./state.js";
import type { ResponseType } from "./stats.js";

/** One authorization request, checked. */
interface AuthRequest {
  app: App;
  redirectUri: string;
  responseType: ResponseType;
  state: string | undefined;
  forceLogin: boolean;
  /**
   * The request as a local URL without `force_login`: where the login returns to (a login that
   * returned to a forced URL would loop) and where the consent form posts.
   */
  returnUrl: string;
}

const AUTH_PARAMS = ["client_id", "redirect_uri", "response_type", "state", "force_login"] as const;
const CONSENT_FIELDS = ["__RequestVerificationToken", "consent"] as const;

/**
 * The redirect URI with OAuth parameters added: in the query (code, and errors of an unknown
 * response type) or in the fragment (the implicit grant and its errors), the URI's own query
 * kept. Values are form-encoded, so a `!` in a token arrives as `%21`.
 */
function toRedirectUri(
  redirectUri: string,
  params: Record<string, string | undefined>,
  inFragment: boolean,
): string {
  const defined = Object.entries(params).filter((entry): entry is [string, string] => entry[1] !== undefined);
  const encoded = new URLSearchParams(defined).toString();
  const hashAt = redirectUri.indexOf("#");
  const base = hashAt === -1 ? redirectUri : redirectUri.slice(0, hashAt);
  if (inFragment) {
    return `${base}#${encoded}`;
  }
  return `${base}${base.includes("?") ? "&" : "?"}${encoded}${hashAt === -1 ? "" : redirectUri.slice(hashAt)}`;
}

/**
 * Checks in this order: repeated parameters, client, redirect URI (all three answered with a
 * 400 page, since a redirect to an unchecked URI would be an open redirect), then the response
 * type (answered at the redirect URI, as OAuth says).
 */
function parseAuthRequest(
  sim: Simulation,
  request: LoginRequest,
): { auth: AuthRequest } | { refusal: Answer } {
  const { query } = request;
  const repeated = repeatedParam(query, AUTH_PARAMS);
  if (repeated !== undefined) {
    return { refusal: badRequestPage(`Parameter ${repeated} given more than once.`) };
  }
  const clientId = query.get("client_id");
  if (!clientId) {
    return { refusal: badRequestPage("Missing parameter: client_id.") };
  }
  const app = sim.state.app(clientId);
  if (app === undefined) {
    return { refusal: badRequestPage("Unknown client_id.") };
  }
  const redirectUri = query.get("redirect_uri");
  if (!redirectUri) {
    return { refusal: badRequestPage("Missing parameter: redirect_uri.") };
  }
  if (!app.redirectUris.includes(redirectUri)) {
    return { refusal: badRequestPage("The redirect_uri is not registered for this client_id.") };
  }
  const state = query.get("state") ?? undefined;
  const responseType = query.get("response_type");
  if (responseType !== "code" && responseType !== "token") {
    // A missing response type gets the same answer: the login contract knows only this error.
    return {
      refusal: redirect(toRedirectUri(redirectUri, { error: "unsupported_response_type", state }, false)),
    };
  }
  const rest = new URLSearchParams(query);
  rest.delete("force_login");
  const restQuery = rest.toString();
  return {
    auth: {
      app,
      redirectUri,
      responseType,
      state,
      forceLogin: query.get("force_login") === "1",
      returnUrl: restQuery === "" ? request.path : `${request.path}?${restQuery}`,
    },
  };
}

function toLogin(request: LoginRequest, auth: AuthRequest): Answer {
  return redirect(`${request.origin}${LOGIN_PATHS.login}?ReturnUrl=${encodeURIComponent(auth.returnUrl)}`);
}

/** The consent form's token is bound to the session and the app: it authorizes nothing else. */
function consentBinding(sessionId: string, clientId: string): string {
  return `${sessionId} ${clientId}`;
}

/** The final redirect: a code (3 minutes, single use, as `/_sim/authorize`'s) or an access token. */
function grant(sim: Simulation, auth: AuthRequest, user: User): Answer {
  const nowMs = sim.clock.nowMs();
  const pair = sim.state.pair(auth.app.clientId, user);
  sim.stats.recordAuthorization(pair.key, auth.responseType);
  if (auth.responseType === "code") {
    const code = sim.state.issueCode(
      { clientId: auth.app.clientId, username: user.username, redirectUri: auth.redirectUri },
      nowMs,
    );
    return redirect(toRedirectUri(auth.redirectUri, { code, state: auth.state }, false));
  }
  const accessToken = sim.state.issueImplicitAccessToken(pair, nowMs);
  const fragment = {
    access_token: accessToken,
    token_type: "bearer",
    expires_in: String(sim.settings.accessTtlSeconds),
    state: auth.state,
  };
  return redirect(toRedirectUri(auth.redirectUri, fragment, true));
}

/**
 * `GET /api/oauth2/auth`: without a session (or with `force_login=1`) to the login; with a
 * session to the consent page the first time this user authorizes this app, else straight to
 * the redirect URI.
 */
export function serveAuthorize(sim: Simulation, request: LoginRequest): Answer {
  const parsed = parseAuthRequest(sim, request);
  if ("refusal" in parsed) {
    return parsed.refusal;
  }
  const { auth } = parsed;
  const session = sim.login.session(request.cookies.get(COOKIES.session));
  if (session === undefined || auth.forceLogin) {
    return toLogin(request, auth);
  }
  if (sim.login.hasConsent(session.user, auth.app.clientId)) {
    return grant(sim, auth, session.user);
  }
  const html = consentPage(
    {
      action: auth.returnUrl,
      token: sim.login.antiforgery.formToken("consent", consentBinding(session.id, auth.app.clientId)),
      clientId: auth.app.clientId,
      userName: session.user.fullName,
    },
    sim.faults.takePageBreak("consent"),
  );
  return page(html);
}

/**
 * `POST /api/oauth2/auth`: the consent form. `consent=allow` records the consent for (user, app)
 * and grants; anything else is the user saying no (`access_denied` at the redirect URI).
 * `force_login` plays no part here: the form is posted by a user who just logged in.
 */
export function serveConsent(sim: Simulation, request: LoginRequest): Answer {
  const parsed = parseAuthRequest(sim, request);
  if ("refusal" in parsed) {
    return parsed.refusal;
  }
  const { auth } = parsed;
  const session = sim.login.session(request.cookies.get(COOKIES.session));
  if (session === undefined) {
    return toLogin(request, auth);
  }
  const form = readForm(request);
  if (typeof form === "string") {
    return badRequestPage(form);
  }
  const repeated = repeatedParam(form, CONSENT_FIELDS);
  if (repeated !== undefined) {
    return badRequestPage(`Field ${repeated} given more than once.`);
  }
  const binding = consentBinding(session.id, auth.app.clientId);
  const token = form.get("__RequestVerificationToken") ?? undefined;
  if (!sim.login.antiforgery.check("consent", binding, token)) {
    return badRequestPage("The antiforgery token is missing or invalid.");
  }
  if (form.get("consent") !== "allow") {
    const params = { error: "access_denied", state: auth.state };
    return redirect(toRedirectUri(auth.redirectUri, params, auth.responseType === "token"));
  }
  sim.login.giveConsent(session.user, auth.app.clientId);
  return grant(sim, auth, session.user);
}
