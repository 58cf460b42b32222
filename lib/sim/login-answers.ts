import type { Answer } from "./http.js";
import { errorPage } from "./login-pages.js";
import { LoginOutcome } from "./stats.js";

/**
 * Every status, header and body of the login flow. Pages carry session cookies, tokens and
 * codes, so none may be cached.
 */

const NO_STORE = { "Cache-Control": "no-store", Pragma: "no-cache" };

function withCookies(cookies: string[]): Record<string, string | string[]> {
  return cookies.length === 0 ? NO_STORE : { ...NO_STORE, "Set-Cookie": cookies };
}

export function page(html: string, cookies: string[] = []): Answer {
  return { status: 200, html, headers: withCookies(cookies) };
}

/** A refusal the client cannot repair by itself: 400 and a page saying why, never a redirect. */
export function badRequestPage(message: string): Answer {
  return { status: 400, html: errorPage(message), headers: NO_STORE };
}

/** Like ASP.NET's, with a tiny body for clients that show it. */
export function redirect(location: string, cookies: string[] = []): Answer {
  return {
    status: 302,
    html: "<!DOCTYPE html>\n<html><body><h2>Object moved</h2></body></html>\n",
    headers: { ...withCookies(cookies), Location: location },
  };
}

/**
 * B2C's `SelfAsserted` answers every credential check with HTTP 200 and a JSON status; the page's
 * JavaScript shows `message`. Codes and texts are Azure AD B2C's.
 */
export function selfAssertedAnswer(outcome: LoginOutcome): Answer {
  return { status: 200, headers: NO_STORE, body: SELF_ASSERTED_BODIES[outcome] };
}

const BAD_PASSWORD = { status: "400", errorCode: "AADB2C90225", message: "Your password is incorrect." };
const BAD_CODE = {
  status: "400",
  errorCode: "AADB2C90151",
  message: "The verification code you entered is invalid.",
};

const SELF_ASSERTED_BODIES: Record<LoginOutcome, Record<string, string>> = {
  [LoginOutcome.success]: { status: "200" },
  [LoginOutcome.badPassword]: BAD_PASSWORD,
  // The same answer as a wrong password: a sign-in page must not tell which user names exist.
  [LoginOutcome.unknownUser]: BAD_PASSWORD,
  [LoginOutcome.badTotp]: BAD_CODE,
  [LoginOutcome.totpReused]: BAD_CODE,
  [LoginOutcome.locked]: {
    status: "400",
    errorCode: "AADB2C90092",
    message: "Your account is temporarily locked to prevent unauthorized use. Try again later.",
  },
};
