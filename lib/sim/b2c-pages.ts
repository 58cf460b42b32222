import { setCookie } from "./cookies.js";
import type { Answer } from "./http.js";
import { badRequestPage, page, selfAssertedAnswer } from "./login-answers.js";
import { b2cPage, confirmedPage } from "./login-pages.js";
import { type LoginRequest, readForm, singleHeader } from "./login-request.js";
import type { B2cTransaction } from "./login-state.js";
import { B2C_COOKIE_PATH, B2C_POLICY, COOKIES, LOGIN_PATHS } from "./login-urls.js";
import { signIn } from "./sign-in.js";
import type { Simulation } from "./simulation.js";

/**
 * B2C's side of the login (login.exact.com in real life): the sign-in page, `SelfAsserted`
 * where the credentials are checked, and `confirmed`, which sends the user back to Exact.
 * A transaction lives from the page to `confirmed`, keyed by `transId`; its csrf token is
 * double-submitted (cookie and header or `csrf_token`), as B2C does.
 */

/** `GET …/oauth2/v2.0/authorize?…&state=<flow>`: a new transaction and its page. */
export function serveB2cAuthorize(sim: Simulation, request: LoginRequest): Answer {
  const flow = sim.login.flow(request.query.get("state") ?? undefined);
  if (flow === undefined) {
    return badRequestPage("Unknown or already used state.");
  }
  const transaction = sim.login.startTransaction(flow);
  const html = b2cPage(
    { csrf: transaction.csrf, transId: transaction.transId, usernameHint: flow.usernameHint },
    sim.faults.takePageBreak("b2c"),
  );
  return page(html, [setCookie(COOKIES.b2cCsrf, transaction.csrf, B2C_COOKIE_PATH)]);
}

/**
 * The transaction named by `tx`, if `p` names the policy and `csrf` (the header or the
 * `csrf_token` parameter) matches both the transaction and the csrf cookie. Every refusal is a
 * plain 400 page: B2C answers a request it cannot place with an HTTP error, not with JSON.
 */
function openTransaction(
  sim: Simulation,
  request: LoginRequest,
  csrf: string | undefined,
): { transaction: B2cTransaction } | { refusal: Answer } {
  if (request.query.get("p")?.toLowerCase() !== B2C_POLICY.toLowerCase()) {
    return { refusal: badRequestPage("Unknown policy.") };
  }
  const transaction = sim.login.transaction(request.query.get("tx") ?? undefined);
  if (transaction === undefined) {
    return { refusal: badRequestPage("Unknown or finished transaction.") };
  }
  if (csrf !== transaction.csrf || request.cookies.get(COOKIES.b2cCsrf) !== transaction.csrf) {
    return { refusal: badRequestPage("The csrf token is missing or invalid.") };
  }
  return { transaction };
}

/**
 * `POST …/SelfAsserted?tx=…&p=…` with `X-CSRF-TOKEN`: the credential check. Every check answers
 * HTTP 200 with B2C's JSON status and counts in the login stats. `X-Requested-With` and
 * `request_type` are not checked.
 */
export async function serveSelfAsserted(sim: Simulation, request: LoginRequest): Promise<Answer> {
  const opened = openTransaction(sim, request, singleHeader(request.headers["x-csrf-token"]));
  if ("refusal" in opened) {
    return opened.refusal;
  }
  const { transaction } = opened;
  const form = readForm(request);
  if (typeof form === "string") {
    return badRequestPage(form);
  }
  // Taken before the await: an attempt that straddles a reset belongs to the world it began in.
  const { stats, state, login } = sim;
  const signInName = form.get("signInName")?.trim() ?? "";
  const result = await signIn(
    state,
    login,
    {
      signInName,
      password: form.get("password") ?? "",
      totpCode: form.get("totpVerificationCode")?.trim() ?? "",
    },
    sim.clock.nowMs(),
  );
  stats.recordLogin(signInName, result.outcome);
  transaction.user = result.user;
  return selfAssertedAnswer(result.outcome);
}

/**
 * `GET …/api/CombinedSigninAndSignup/confirmed?rememberMe=…&csrf_token=…&tx=…&p=…`: ends the
 * transaction of a signed-in user with a page that posts B2C's code to Exact. `rememberMe` is
 * not used.
 */
export function serveConfirmed(sim: Simulation, request: LoginRequest): Answer {
  const opened = openTransaction(sim, request, request.query.get("csrf_token") ?? undefined);
  if ("refusal" in opened) {
    return opened.refusal;
  }
  const { transaction } = opened;
  if (transaction.user === undefined) {
    return badRequestPage("Sign in first: no successful sign-in in this transaction.");
  }
  const code = sim.login.finishTransaction(transaction, transaction.user, sim.clock.nowMs());
  const html = confirmedPage(
    {
      action: `${request.origin}${LOGIN_PATHS.signin}`,
      state: transaction.flow.id,
      code: code.code,
      idToken: code.idToken,
    },
    sim.faults.takePageBreak("confirmed"),
  );
  return page(html);
}
