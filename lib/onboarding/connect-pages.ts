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
import { ConnectRefused, RefusalReason } from "./connect-refused.js";

/** A Function URL answer (API Gateway v2 structured result). */
export interface HtmlAnswer {
  readonly statusCode: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/**
 * Every answer: never cached (a link or a callback must not be replayed from a cache), never
 * framed, no outside resources, and no Referer: the callback URL holds a code.
 */
const SECURITY_HEADERS = {
  "Cache-Control": "no-store",
  "Referrer-Policy": "no-referrer",
  "X-Content-Type-Options": "nosniff",
  "Content-Security-Policy":
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
} as const;

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

/** A small self-contained HTML page; `paragraphs` are plain text. */
export function htmlPage(args: {
  readonly statusCode: number;
  readonly title: string;
  readonly paragraphs: readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
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
    "</body></html>",
    "",
  ].join("\n");
  return {
    statusCode: args.statusCode,
    headers: { "Content-Type": "text/html; charset=utf-8", ...SECURITY_HEADERS, ...args.headers },
    body,
  };
}

/** 302 to Exact's authorization page. */
export function redirectAnswer(location: string): HtmlAnswer {
  return {
    statusCode: 302,
    headers: { "Content-Type": "text/html; charset=utf-8", ...SECURITY_HEADERS, Location: location },
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
};

/** A refused link or state: nothing changed. */
export function refusalPage(error: ConnectRefused): HtmlAnswer {
  const { statusCode, title } = REFUSAL[error.reason];
  const advice =
    error.reason === RefusalReason.RedirectMismatch || error.reason === RefusalReason.NotCodeMode
      ? "Nothing was changed. This link stays usable until it expires once that is fixed."
      : `Nothing was changed. ${newLink(error.connectionId)}`;
  return htmlPage({ statusCode, title, paragraphs: [`${capitalize(error.message)}.`, advice] });
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

export function methodNotAllowedPage(): HtmlAnswer {
  return htmlPage({
    statusCode: 405,
    title: "Method not allowed",
    paragraphs: ["Open the connect link in a browser."],
    headers: { Allow: "GET" },
  });
}

function capitalize(value: string): string {
  return value.charAt(0).toUpperCase() + value.slice(1);
}
