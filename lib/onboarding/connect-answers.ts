import type { LinkQuery } from "./link-signing.js";

/** A one-time link for the person who authorizes a connection at Exact. */
export interface ConnectLink {
  readonly connectionId: string;
  readonly url: string;
  /** ISO 8601. */
  readonly expiresAt: string;
  readonly expiresAtEpochSec: number;
}

/**
 * What `GET /start` shows: a confirmation page, and the browser-binding cookie it sets. Nothing
 * was claimed or written.
 */
export interface ConfirmAnswer {
  readonly connectionId: string;
  /** The link's own fields, which the page's form posts back to `/start`. */
  readonly form: LinkQuery;
  /** Origin of the connection's Exact (its base URL), where the POST's redirect goes. */
  readonly exactOrigin: string;
  /** When the link expires, ISO 8601. */
  readonly expiresAt: string;
  /**
   * `Set-Cookie` of a fresh browser binding (`__Host-connect-<nonce>`), which the button's POST
   * must bring back: it lasts until the link expires plus a state's life.
   */
  readonly bindingCookie: string;
}

/**
 * What `POST /start` answers: a redirect to Exact's authorization page, with a state bound to the
 * cookie this browser brought (it keeps that cookie; no new one is set).
 */
export interface StartAnswer {
  readonly connectionId: string;
  /** Exact's `/api/oauth2/auth` with client ID, redirect URI and the signed state. */
  readonly location: string;
}

/** What Exact sent back to `/callback`: a code, or its refusal (`?error=`). */
export type ExactReply =
  | { readonly kind: "code"; readonly code: string }
  | { readonly kind: "declined"; readonly detail: string };

/**
 * A callback whose state verified, was not used before, came from the browser that started the
 * attempt, and whose "completed" marker is now claimed: the attempt is over, whatever follows.
 */
export interface AcceptedCallback {
  readonly connectionId: string;
  readonly reply: ExactReply;
  /** `Set-Cookie` that removes the attempt's binding cookie. */
  readonly clearCookie: string;
}

/** Exact's `error_description` is shown on the page; a bound keeps a hostile one short. */
const MAX_EXACT_ERROR_LENGTH = 200;

/** Exact's code, or its `?error=` with the description cut short; undefined when neither came. */
export function exactReply(query: Readonly<Record<string, string | undefined>>): ExactReply | undefined {
  if (query.error !== undefined) {
    const detail = [query.error, query.error_description]
      .filter(Boolean)
      .join(": ")
      .slice(0, MAX_EXACT_ERROR_LENGTH);
    return { kind: "declined", detail };
  }
  return query.code ? { kind: "code", code: query.code } : undefined;
}
