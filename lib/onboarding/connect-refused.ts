import { ValidationError } from "../errors.js";

/** Why a connect link, an OAuth state or a callback was refused. Each has its own page. */
export const RefusalReason = {
  /** A parameter is missing or not of the expected form. */
  Malformed: "malformed",
  /** The signature does not match: tampered, signed with another key, or made up. */
  BadSignature: "bad_signature",
  Expired: "expired",
  /** The link's authorization was started (its button pressed), or its state used at the callback, once already. */
  Used: "used",
  /** The connection was removed after the link was made. */
  ConnectionGone: "connection_gone",
  /** Only `code` connections have a person authorize them. */
  NotCodeMode: "not_code_mode",
  /** The connection's redirect URI is not this function's `/callback`, so Exact would send the code elsewhere. */
  RedirectMismatch: "redirect_mismatch",
  /** Exact redirected back with `?error=…` (the user declined, or Exact refused the request). */
  ExactDeclined: "exact_declined",
  /**
   * The button's POST, or the callback, came without the cookie the confirmation page set:
   * another browser (a posted form or a `state` seen by someone else, a forged cross-site POST),
   * or a browser that refuses cookies.
   */
  BrowserCookieMissing: "browser_cookie_missing",
  /** The callback's cookie is not the one the `state` was bound to: another attempt's browser. */
  BrowserCookieMismatch: "browser_cookie_mismatch",
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

/** Which of the two signed artefacts a refusal is about. */
export type RefusedSubject = "link" | "state";

/**
 * A connect request that changes nothing: bad input from a browser, never a broker failure.
 * The message names identifiers and reasons only; it is shown (escaped) on the page.
 */
export class ConnectRefused extends ValidationError {
  readonly reason: RefusalReason;
  readonly subject: RefusedSubject;
  /** The connection the request was about, once a signature vouched for it. */
  readonly connectionId: string | undefined;

  constructor(
    reason: RefusalReason,
    subject: RefusedSubject,
    message: string,
    options?: ErrorOptions & { readonly connectionId?: string },
  ) {
    super(message, options);
    this.reason = reason;
    this.subject = subject;
    this.connectionId = options?.connectionId;
  }
}
