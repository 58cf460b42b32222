import type { IncomingHttpHeaders } from "node:http";
import { readCookies } from "./cookies.js";
import type { RequestBody } from "./http.js";

/** What the login handlers get of a request, parsed once by the router. */
export interface LoginRequest {
  method: string;
  /** The path as received (Exact's paths are matched lower-cased, but a ReturnUrl keeps its case). */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  cookies: Map<string, string>;
  body: RequestBody;
  /** `http://host:port` as the client addressed the simulator; absolute URLs of pages use it. */
  origin: string;
}

/** A Host header that can be put into a URL as it is: a name or IPv4 or [IPv6], and a port. */
const PLAIN_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * `http://host:port` as the client addressed the simulator, rather than the listening address,
 * so that cookies stay on one host when a client says `localhost` and absolute URLs (login
 * pages, the REST API's `__next`) lead back to it. A missing or odd Host header falls back to
 * `fallbackOrigin`.
 */
export function requestOrigin(host: string | undefined, fallbackOrigin: string): string {
  return host !== undefined && PLAIN_HOST.test(host) ? `http://${host}` : fallbackOrigin;
}

/** A login request as its handlers read it; see `requestOrigin` for `origin`. */
export function toLoginRequest(
  method: string,
  url: string,
  headers: IncomingHttpHeaders,
  body: RequestBody,
  fallbackOrigin: string,
): LoginRequest {
  const queryStart = url.indexOf("?");
  return {
    method,
    path: queryStart === -1 ? url : url.slice(0, queryStart),
    query: new URLSearchParams(queryStart === -1 ? "" : url.slice(queryStart + 1)),
    headers,
    cookies: readCookies(headers.cookie),
    body,
    origin: requestOrigin(headers.host, fallbackOrigin),
  };
}

/** The names of parameters given more than once, which no login endpoint accepts. */
export function repeatedParam(params: URLSearchParams, names: readonly string[]): string | undefined {
  return names.find((name) => params.getAll(name).length > 1);
}

function isFormContentType(contentType: string | undefined): boolean {
  return contentType?.split(";")[0]?.trim().toLowerCase() === "application/x-www-form-urlencoded";
}

/** A posted form, or the reason it cannot be read. */
export function readForm(request: LoginRequest): URLSearchParams | string {
  if (request.body.tooLarge) {
    return "The request body is too large.";
  }
  if (!isFormContentType(request.headers["content-type"])) {
    return "Content-Type must be application/x-www-form-urlencoded.";
  }
  return new URLSearchParams(request.body.bytes.toString("utf8"));
}

/** A header a client sends once; a repeated one counts as missing. */
export function singleHeader(value: string | string[] | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}
