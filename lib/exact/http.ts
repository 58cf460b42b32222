import http from "node:http";
import https from "node:https";

/**
 * What happened to one HTTP exchange, in the terms the refresh protocol needs.
 *
 * - `response`: Exact answered (any status).
 * - `not_sent`: failed before a connection existed (refused, DNS, TLS handshake, connect
 *   timeout). Exact cannot have seen the request, so it is safe to try again.
 * - `unknown`: failed after the request may have reached Exact (reset, timeout, abort while
 *   waiting). A refresh may have rotated the chain: never resend blindly (design invariant 5).
 */
export type HttpOutcome =
  | { readonly kind: "response"; readonly status: number; readonly headers: Headers; readonly body: string }
  | { readonly kind: "not_sent"; readonly cause: Error }
  | { readonly kind: "unknown"; readonly cause: Error };

export interface HttpRequest {
  readonly method: "GET" | "POST";
  readonly url: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** Whole-exchange deadline; the request is aborted when it passes. */
  readonly timeoutMs: number;
}

/** The one seam between the broker and the network; tests pass the real one at the simulator. */
export type HttpSend = (request: HttpRequest) => Promise<HttpOutcome>;

const MAX_RESPONSE_BYTES = 256 * 1024;

function toHeaders(raw: http.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

/**
 * Sends one request on a fresh connection. A fresh connection (no keep-alive pool) is what
 * makes `not_sent` trustworthy: on a reused socket a reset could come after Exact read the
 * request, and we could no longer tell the two apart.
 */
export const sendHttp: HttpSend = (request) =>
  new Promise<HttpOutcome>((resolve) => {
    const url = new URL(request.url);
    const transport = url.protocol === "https:" ? https : http;
    let connected = false;
    let settled = false;
    const settle = (outcome: HttpOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const fail = (cause: Error): void => settle({ kind: connected ? "unknown" : "not_sent", cause });

    const req = transport.request(url, {
      method: request.method,
      headers: request.headers,
      agent: false,
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`no answer within ${request.timeoutMs} ms`));
    }, request.timeoutMs);

    req.on("socket", (socket) => {
      socket.once(url.protocol === "https:" ? "secureConnect" : "connect", () => {
        connected = true;
      });
    });
    req.on("error", fail);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          res.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on("error", fail);
      res.on("aborted", () => fail(new Error("response aborted")));
      res.on("end", () =>
        settle({
          kind: "response",
          status: res.statusCode ?? 0,
          headers: toHeaders(res.headers),
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
    });
    req.end(request.body);
  });
