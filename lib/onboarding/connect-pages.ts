import { ParseError } from "@aws-lambda-powertools/parser";
import type { SeedResult } from "../chain/onboarding.js";
import {
  BrokerError,
  ConfigurationError,
  ConnectionNotFound,
  ExactUnavailable,
  ReauthRequired,
  SecretUnavailable,
  Throttled,
  ValidationError,
} from "../errors.js";
import { redactString } from "../log/redactor.js";
import type { ConfirmAnswer } from "./connect-answers.js";
import { ConnectRefused, RefusalReason } from "./connect-refused.js";
import { ConnectPath } from "./connect-url.js";

/** A Function URL answer (payload 2.0 structured result). */
export interface HtmlAnswer {
  readonly statusCode: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /**
   * `Set-Cookie` values. A Function URL turns this array into `set-cookie` headers; a function
   * should not set that header itself (AWS Lambda developer guide, "Cookies").
   */
  readonly cookies?: readonly string[];
}

/**
 * Every answer: never cached (a link or a callback must not be replayed from a cache), never
 * framed, no scripts or outside resources, and no Referer: the callback URL holds a code.
 * `formAction` is 'none' except on the confirmation page.
 */
function securityHeaders(formAction = "'none'"): Record<string, string> {
  return {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": `default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action ${formAction}; frame-ancestors 'none'`,
  };
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char] ?? char);
}

/** Text is redacted (a last net: no page text should hold a secret) and then escaped. */
function text(value: string): string {
  return escapeHtml(redactString(value));
}

/** A form of hidden fields and one button, posted to `action` (a path on this origin). */
interface PageForm {
  readonly action: string;
  readonly fields: Readonly<Record<string, string>>;
  readonly button: string;
  /** The CSP `form-action` sources the form needs. */
  readonly formAction: string;
}

function formHtml(form: PageForm): string {
  const inputs = Object.entries(form.fields).map(
    ([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`,
  );
  return [
    `<form method="post" action="${escapeHtml(form.action)}">`,
    ...inputs,
    `<button type="submit">${text(form.button)}</button>`,
    "</form>",
  ].join("\n");
}

/** A small self-contained HTML page; `paragraphs` are plain text, `form` an optional button. */
export function htmlPage(args: {
  readonly statusCode: number;
  readonly title: string;
  readonly paragraphs: readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
  readonly form?: PageForm;
}): HtmlAnswer {
  const body = [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="robots" content="noindex, nofollow">',
    `<title>${text(args.title)} · Exact token broker</title>`,
    "<style>body{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;line-height:1.5}</style>",
    "</head><body>",
    `<h1>${text(args.title)}</h1>`,
    ...args.paragraphs.map((paragraph) => `<p>${text(paragraph)}</p>`),
    ...(args.form ? [formHtml(args.form)] : []),
    "</body></html>",
    "",
  ].join("\n");
  return {
    statusCode: args.statusCode,
    headers: {
      "Content-Type": "text/html; charset=utf-8",
      ...securityHeaders(args.form?.formAction),
      ...args.headers,
    },
    body,
  };
}

/** The same answer with `Set-Cookie` values added. */
export function withCookies(answer: HtmlAnswer, cookies: readonly string[]): HtmlAnswer {
  return { ...answer, cookies: [...(answer.cookies ?? []), ...cookies] };
}

/**
 * `GET /start`: what the link is for, one button that posts the link back, and the
 * browser-binding cookie the POST must bring. Nothing is spent until the button is pressed, so a
 * link preview that fetches the page changes nothing.
 */
export function confirmationPage(answer: ConfirmAnswer): HtmlAnswer {
  const page = htmlPage({
    statusCode: 200,
    title: "Connect to Exact Online",
    paragraphs: [
      `This link connects the token broker's connection "${answer.connectionId}" to Exact Online.`,
      "Press the button only if you are the person who should authorize it: Exact Online will ask you to log in and to allow access. Finish in this browser; the link works once.",
      `The link expires at ${answer.expiresAt}.`,
    ],
    form: {
      action: ConnectPath.Start,
      fields: { ...answer.form },
      button: "Continue to Exact Online",
      // Chrome applies form-action to every redirect that follows the POST too (CSP3
      // "form-action"), and Exact's authorization redirects on to its login pages, whose hosts
      // change without notice (login.exact.com and whatever single sign-on a company uses). So:
      // this origin, the connection's Exact (http locally) and any https target. The page holds
      // no injected markup (all text escaped, no scripts run) for a hostile form to hide in.
      formAction: `'self' ${answer.exactOrigin} https:`,
    },
  });
  return withCookies(page, [answer.bindingCookie]);
}

/** 303 (after the POST) to Exact's authorization page; the browser keeps the cookie it brought. */
export function redirectAnswer(location: string): HtmlAnswer {
  return {
    statusCode: 303,
    headers: { "Content-Type": "text/html; charset=utf-8", ...securityHeaders(), Location: location },
    body: `<!doctype html>\n<p><a href="${escapeHtml(location)}">Continue to Exact Online</a></p>\n`,
  };
}

function division(result: SeedResult): string {
  return result.division === null ? "no current division" : `division ${result.division}`;
}

/** After `seed`: the Exact user and division now connected, or where the tokens went instead. */
export function seededPage(result: SeedResult, requestedFor: string): HtmlAnswer {
  if (result.redirectedFrom !== undefined) {
    return htmlPage({
      statusCode: 409,
      title: "Already connected as another connection",
      paragraphs: [
        `Exact user ${result.exactUserName} is already connected as connection "${result.connectionId}".`,
        `Exact started a new token chain for this login and ended the old one, so the new tokens were stored on "${result.connectionId}" (${division(result)}). Nothing else changed: connection "${requestedFor}" is still not connected.`,
        `Use "${result.connectionId}", or ask the operator to remove it first if "${requestedFor}" should own this Exact user.`,
        "Reason code: duplicate_user.",
      ],
    });
  }
  return htmlPage({
    statusCode: 200,
    title: "Connected",
    paragraphs: [
      `Connection "${result.connectionId}" is now connected to Exact Online as ${result.exactUserName} (${division(result)}).`,
      "The broker keeps this connection alive from here. You can close this window.",
    ],
  });
}

function newLink(connectionId?: string): string {
  return `Ask the operator for a new connect link (exact-broker connect --id ${connectionId ?? "…"}).`;
}

const NEW_LINK = newLink();

const REFUSAL: Readonly<Record<RefusalReason, { readonly statusCode: number; readonly title: string }>> = {
  [RefusalReason.Malformed]: { statusCode: 400, title: "This link is not valid" },
  [RefusalReason.BadSignature]: { statusCode: 400, title: "This link is not valid" },
  [RefusalReason.Expired]: { statusCode: 410, title: "This link has expired" },
  [RefusalReason.Used]: { statusCode: 410, title: "This link was already used" },
  [RefusalReason.ConnectionGone]: { statusCode: 410, title: "This connection no longer exists" },
  [RefusalReason.NotCodeMode]: { statusCode: 409, title: "This connection is not connected through a link" },
  [RefusalReason.RedirectMismatch]: { statusCode: 409, title: "This connection's redirect URI is wrong" },
  [RefusalReason.ExactDeclined]: { statusCode: 400, title: "Exact Online did not authorize the connection" },
  [RefusalReason.BrowserCookieMissing]: {
    statusCode: 403,
    title: "Finish in the browser that opened the link",
  },
  [RefusalReason.BrowserCookieMismatch]: {
    statusCode: 403,
    title: "Finish in the browser that opened the link",
  },
};

function advice(error: ConnectRefused): string {
  switch (error.reason) {
    case RefusalReason.RedirectMismatch:
    case RefusalReason.NotCodeMode:
      return "Nothing was changed. This link stays usable until it expires once that is fixed.";
    case RefusalReason.BrowserCookieMissing:
    case RefusalReason.BrowserCookieMismatch:
      if (error.subject === "link") {
        // The button's POST: the link was not opened in this browser, or its cookie was refused.
        return (
          "Nothing was changed. Open the link again in this browser, with cookies allowed for this " +
          'site, and press "Continue to Exact Online" there. The link stays usable until it expires.'
        );
      }
      return (
        "Nothing was changed. The authorization can still be finished in the browser where " +
        '"Continue to Exact Online" was pressed, with cookies allowed for this site, until it expires. ' +
        newLink(error.connectionId)
      );
    default:
      return `Nothing was changed. ${newLink(error.connectionId)}`;
  }
}

/** A refused link or state: nothing changed. The reason code is stable (connect-refused.ts). */
export function refusalPage(error: ConnectRefused): HtmlAnswer {
  const { statusCode } = REFUSAL[error.reason];
  const title =
    error.reason === RefusalReason.BrowserCookieMissing && error.subject === "link"
      ? "Open the link in this browser"
      : REFUSAL[error.reason].title;
  return htmlPage({
    statusCode,
    title,
    paragraphs: [`${capitalize(error.message)}.`, advice(error), `Reason code: ${error.reason}.`],
  });
}

/**
 * Anything else that went wrong: a code Exact refused, Exact being unavailable, a broken
 * configuration. BrokerError messages carry identifiers and reasons only (errors.ts), so they
 * are shown; any other error is not.
 */
export function failurePage(error: unknown): HtmlAnswer {
  if (error instanceof ConnectRefused) return refusalPage(error);
  if (error instanceof ParseError) {
    return htmlPage({ statusCode: 400, title: "Request not understood", paragraphs: [NEW_LINK] });
  }
  // A configuration problem is the operator's, and anyone holding a link can see this page.
  const internal = error instanceof ConfigurationError || error instanceof SecretUnavailable;
  const detail = error instanceof BrokerError && !internal ? `${capitalize(error.message)}.` : undefined;
  const page = (statusCode: number, title: string, next: string, headers?: Record<string, string>) =>
    htmlPage({
      statusCode,
      title,
      paragraphs: [...(detail ? [detail] : []), next],
      ...(headers ? { headers } : {}),
    });
  if (error instanceof ConnectionNotFound) {
    return page(410, "This connection no longer exists", "Nothing was changed.");
  }
  if (error instanceof ReauthRequired) {
    return page(
      502,
      "Exact Online rejected the app",
      `Nothing was changed. Fix the connection's secret. ${NEW_LINK}`,
    );
  }
  if (error instanceof Throttled || error instanceof ExactUnavailable) {
    const retry = String(error.retryAfterSeconds ?? 60);
    return page(503, "Exact Online is not available right now", `Try again in a minute. ${NEW_LINK}`, {
      "Retry-After": retry,
    });
  }
  if (internal) {
    return page(
      500,
      "The token broker is not configured correctly",
      "The operator can find details in its logs.",
    );
  }
  if (error instanceof ValidationError) {
    return page(400, "Exact Online refused the authorization", `Nothing was changed. ${NEW_LINK}`);
  }
  return htmlPage({
    statusCode: 500,
    title: "Something went wrong",
    paragraphs: [
      "The token broker failed unexpectedly; the operator can find details in its logs.",
      NEW_LINK,
    ],
  });
}

export function notFoundPage(): HtmlAnswer {
  return htmlPage({
    statusCode: 404,
    title: "Not found",
    paragraphs: ["This address is not part of the connect flow. Open the connect link you were given."],
  });
}

/** @param allow the methods the path answers, for the `Allow` header */
export function methodNotAllowedPage(allow: string): HtmlAnswer {
  return htmlPage({
    statusCode: 405,
    title: "Method not allowed",
    paragraphs: ["Open the connect link in a browser."],
    headers: { Allow: allow },
  });
}

function capitalize(value: string): string {
  return value.charAt(0).toUpperCase() + value.slice(1);
}
