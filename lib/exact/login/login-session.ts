import { CookieJar } from "tough-cookie";
import type { HttpSend } from "../http.js";
import { type LoginErrorOptions, LoginPageNotUnderstood, LoginUnavailable } from "./login-errors.js";

/** Where a navigation ended: a page (HTTP 200), or Exact's redirect to the app's redirect URI. */
export type Landing =
  | { readonly kind: "page"; readonly url: URL; readonly body: string }
  | { readonly kind: "redirect_uri"; readonly url: URL };

export interface PageRequest {
  readonly method: "GET" | "POST";
  readonly url: URL;
  readonly headers?: Readonly<Record<string, string>>;
  /** Sent as `application/x-www-form-urlencoded` unless `headers` say otherwise. */
  readonly body?: string;
}

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
}

export interface LoginSessionOptions {
  readonly send: HttpSend;
  readonly now: () => number;
  readonly timeoutMs: number;
  /** Origins (`https://host[:port]`) requests may go to; anything else is refused before sending. */
  readonly allowedOrigins: readonly string[];
  readonly redirectUri: URL;
}

/** A browser follows more, but Exact's longest chain is three; more means a loop. */
export const MAX_REDIRECTS = 15;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const NETWORK_RETRY_AFTER_SECONDS = 30;
const SERVER_RETRY_AFTER_SECONDS = 60;
const USER_AGENT = "exact-token-broker-login/1";

/**
 * The state of one login: its own cookie jar (no session leaks between logins or chains), its
 * deadline, the origins the password may reach, and the TOTP step once its code went out.
 * Every request goes through here, so the origin check and the deadline cannot be skipped.
 */
export class LoginSession {
  readonly #jar = new CookieJar();
  readonly #options: LoginSessionOptions;
  readonly #deadlineMs: number;
  readonly #allowed: ReadonlySet<string>;
  /** Set once a TOTP code was sent; every later error carries it (see LoginError.totpStep). */
  totpStep: number | undefined;

  constructor(options: LoginSessionOptions) {
    this.#options = options;
    this.#deadlineMs = options.now() + options.timeoutMs;
    this.#allowed = new Set(options.allowedOrigins);
  }

  /** Milliseconds left of the login's budget (negative when spent). */
  remainingMs(): number {
    return this.#deadlineMs - this.#options.now();
  }

  errorOptions(extra: ErrorOptions = {}): LoginErrorOptions {
    return this.totpStep === undefined ? extra : { ...extra, totpStep: this.totpStep };
  }

  notUnderstood(step: string, problem: string): LoginPageNotUnderstood {
    return new LoginPageNotUnderstood(step, problem, this.errorOptions());
  }

  unavailable(step: string, problem: string, retryAfterSeconds: number, cause?: Error): LoginUnavailable {
    return new LoginUnavailable(step, problem, {
      ...this.errorOptions(cause ? { cause } : {}),
      retryAfterSeconds,
    });
  }

  /**
   * Sends `request` and follows redirects with GET until a page (HTTP 200) or the redirect URI,
   * which is returned and never requested: the code or token is in its URL, and the redirect
   * URI may be anywhere.
   */
  async navigate(step: string, request: PageRequest): Promise<Landing> {
    let next = request;
    for (let redirects = 0; ; redirects++) {
      const answer = await this.exchange(step, next);
      if (answer.status === 200) return { kind: "page", url: next.url, body: answer.body };
      if (!REDIRECT_STATUSES.has(answer.status)) {
        throw this.notUnderstood(step, `HTTP ${answer.status} from ${next.url.origin}`);
      }
      const location = answer.headers.get("location");
      if (!location) throw this.notUnderstood(step, `HTTP ${answer.status} without a Location header`);
      let target: URL;
      try {
        target = new URL(location, next.url);
      } catch {
        throw this.notUnderstood(step, `HTTP ${answer.status} with a Location that is not a URL`);
      }
      if (this.#isRedirectUri(target)) return { kind: "redirect_uri", url: target };
      if (redirects >= MAX_REDIRECTS) throw this.notUnderstood(step, `more than ${MAX_REDIRECTS} redirects`);
      next = { method: "GET", url: target };
    }
  }

  /**
   * One request and its answer, no redirects followed. Cookies come from and go to the jar.
   * Refuses origins outside the allowed set, network failures and 5xx/429 become
   * LoginUnavailable; any other status is the caller's to judge.
   */
  async exchange(step: string, request: PageRequest): Promise<Answer> {
    const { url } = request;
    if (!this.#allowed.has(url.origin)) {
      throw this.notUnderstood(
        step,
        `refused to send a request to ${url.origin}: only ${[...this.#allowed].join(" and ")} may receive the login`,
      );
    }
    const timeoutMs = this.remainingMs();
    if (timeoutMs <= 0) {
      throw this.unavailable(
        step,
        `the login's ${this.#options.timeoutMs} ms budget ran out`,
        NETWORK_RETRY_AFTER_SECONDS,
      );
    }
    const headers: Record<string, string> = {
      "user-agent": USER_AGENT,
      accept: "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8",
      ...(request.body !== undefined ? { "content-type": "application/x-www-form-urlencoded" } : {}),
      ...request.headers,
    };
    const cookie = await this.#jar.getCookieString(url.href);
    if (cookie) headers.cookie = cookie;

    const outcome = await this.#options.send({
      method: request.method,
      url: url.href,
      headers,
      ...(request.body !== undefined ? { body: request.body } : {}),
      timeoutMs,
    });
    if (outcome.kind !== "response") {
      const what = outcome.kind === "not_sent" ? "could not reach" : "no answer from";
      throw this.unavailable(step, `${what} ${url.origin}`, NETWORK_RETRY_AFTER_SECONDS, outcome.cause);
    }
    for (const setCookie of outcome.headers.getSetCookie()) {
      await this.#jar.setCookie(setCookie, url.href, { ignoreError: true });
    }
    if (outcome.status >= 500 || outcome.status === 429) {
      throw this.unavailable(
        step,
        `HTTP ${outcome.status} from ${url.origin}`,
        retryAfterSeconds(outcome.headers) ?? SERVER_RETRY_AFTER_SECONDS,
      );
    }
    return outcome;
  }

  /** Same origin and path as the registered redirect URI; its query and fragment are Exact's answer. */
  #isRedirectUri(url: URL): boolean {
    const expected = this.#options.redirectUri;
    return url.origin === expected.origin && url.pathname === expected.pathname;
  }
}

function retryAfterSeconds(headers: Headers): number | undefined {
  const value = headers.get("retry-after");
  if (value === null || !/^\d{1,6}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}
