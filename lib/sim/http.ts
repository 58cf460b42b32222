import type { IncomingMessage, ServerResponse } from "node:http";

/** An HTTP answer before it is written: handlers return these, only the server writes. */
export interface Answer {
  status: number;
  /** Sent as JSON, unless `html` is given. */
  body?: unknown;
  /** A page of the login flow, sent as `text/html` in place of `body`. */
  html?: string;
  /** A scripted answer's body, sent as it is in place of `body`; no Content-Type when undefined. */
  raw?: { text: string; contentType: string | undefined };
  /** A list for headers that may repeat (`Set-Cookie`). */
  headers?: Record<string, string | string[]>;
}

export interface RequestBody {
  bytes: Buffer;
  /** More than the limit arrived; `bytes` is then incomplete and must not be used. */
  tooLarge: boolean;
}

/** Token requests and control bodies are a few hundred bytes; 16 KiB is generous. */
const BODY_LIMIT_BYTES = 16 * 1024;

/**
 * Reads the whole body even past the limit: answering while the client is still sending and
 * then closing the socket makes the kernel send an RST, and the client would see a reset
 * instead of the 400.
 */
export async function readBody(req: IncomingMessage, limitBytes = BODY_LIMIT_BYTES): Promise<RequestBody> {
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (received <= limitBytes) {
      chunks.push(chunk);
    }
  }
  return { bytes: Buffer.concat(chunks), tooLarge: received > limitBytes };
}

function encodeBody(answer: Answer): { contentType: string | undefined; payload: string } {
  if (answer.raw !== undefined) {
    return { contentType: answer.raw.contentType, payload: answer.raw.text };
  }
  if (answer.html !== undefined) {
    return { contentType: "text/html; charset=utf-8", payload: answer.html };
  }
  return { contentType: "application/json; charset=utf-8", payload: JSON.stringify(answer.body ?? null) };
}

export function sendAnswer(res: ServerResponse, answer: Answer): void {
  const { contentType, payload } = encodeBody(answer);
  res.writeHead(answer.status, {
    ...(contentType === undefined ? {} : { "Content-Type": contentType }),
    "Content-Length": Buffer.byteLength(payload),
    ...answer.headers,
  });
  res.end(payload);
}

/** Like a dropped connection in real life: an RST, the client gets ECONNRESET and no answer. */
export function resetConnection(req: IncomingMessage): void {
  req.socket.resetAndDestroy();
}

/**
 * The control API can reset, reconfigure and fault the simulator, so it answers only local
 * callers. The server listens on 127.0.0.1 anyway; this check keeps that true should the
 * listening address ever widen.
 */
export function isLoopbackAddress(address: string | undefined): boolean {
  return address === "::1" || /^(::ffff:)?127\./.test(address ?? "");
}
