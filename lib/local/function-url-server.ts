import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { LambdaFunctionUrlEvent } from "@aws-lambda-powertools/parser/types";
import type { Context } from "aws-lambda";

const HOST = "127.0.0.1";
/** A Function URL accepts at most 6 MB of request body. */
const MAX_BODY_BYTES = 6 * 1024 * 1024;
/**
 * Bodies a Function URL passes as text; every other body, an HTML form's
 * `application/x-www-form-urlencoded` included, arrives base64 with `isBase64Encoded: true`
 * (AWS Lambda developer guide, "Request payload format": a binary content type's body is
 * base64-encoded; AWS's Function URL launch material: unless Content-Type is application/json
 * or text/*). A handler must decode either way.
 */
const TEXT_CONTENT = /^(text\/|application\/json\s*(;|$))/i;

/** A Lambda handler as a Function URL invokes it (a middy handler fits). */
export type FunctionUrlHandler = (event: LambdaFunctionUrlEvent, context: Context) => Promise<unknown>;

export interface FunctionUrlServerOptions {
  /** 0 picks a free port. @default 0 */
  readonly port?: number;
  /** `context.functionName`. @default "local-function-url" */
  readonly functionName?: string;
  /** What `context.getRemainingTimeInMillis()` counts down from. @default 30000 */
  readonly timeoutMs?: number;
}

export interface FunctionUrlServer {
  /** `http://127.0.0.1:PORT`: the local stand-in for `https://<id>.lambda-url.<region>.on.aws`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves a Function URL handler on 127.0.0.1: each HTTP request becomes a payload-2.0 event,
 * the handler's answer becomes the HTTP response, by the rules a Function URL applies (a result
 * without `statusCode` is a 200 JSON body; a thrown error is a 502). Shapes as AWS documents
 * them ("Request and response payloads"): the `Cookie` header becomes the event's `cookies`
 * array (one `name=value` each, no `cookie` header), a body is text or base64 by its content
 * type (TEXT_CONTENT), and the result's `cookies` array becomes one `set-cookie` header each.
 * Requests carry `x-forwarded-proto: http`, so a handler can tell its own URL.
 */
export async function startFunctionUrlServer(
  handler: FunctionUrlHandler,
  options: FunctionUrlServerOptions = {},
): Promise<FunctionUrlServer> {
  const server = createServer((req, res) => {
    serve(handler, options, req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
      res.end('{"Message":"Internal Server Error"}');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, HOST, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${HOST}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function serve(
  handler: FunctionUrlHandler,
  options: FunctionUrlServerOptions,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const body = await readBody(req);
  if (body === undefined) {
    res.writeHead(413, { "content-type": "application/json" });
    res.end('{"Message":"Request Entity Too Large"}');
    return;
  }
  const event = toEvent(req, body);
  let result: unknown;
  try {
    result = await handler(event, toContext(event.requestContext.requestId, options));
  } catch {
    // What a Function URL answers when the function throws; the handler logged it.
    res.writeHead(502, { "content-type": "application/json" });
    res.end('{"Message":"Internal Server Error"}');
    return;
  }
  writeResult(res, result);
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on("end", () => resolve(size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function toEvent(req: IncomingMessage, body: Buffer): LambdaFunctionUrlEvent {
  const url = new URL(req.url ?? "/", `http://${HOST}`);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === "cookie") continue;
    headers[name] = Array.isArray(value) ? value.join(",") : value;
  }
  const sourceIp = (req.socket.remoteAddress ?? HOST).replace(/^::ffff:/, "");
  headers["x-forwarded-proto"] = "http";
  headers["x-forwarded-port"] = String(req.socket.localPort ?? "");
  headers["x-forwarded-for"] = sourceIp;
  const host = headers.host ?? `${HOST}:${req.socket.localPort}`;

  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    // A Function URL joins a repeated parameter's values with commas.
    query[name] = name in query ? `${query[name]},${value}` : value;
  }
  const cookies = req.headers.cookie
    ?.split(";")
    .map((cookie) => cookie.trim())
    .filter(Boolean);
  const text = TEXT_CONTENT.test(headers["content-type"] ?? "");
  const nowMs = Date.now();
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: url.pathname,
    rawQueryString: url.search.replace(/^\?/, ""),
    ...(cookies?.length ? { cookies } : {}),
    headers,
    ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: "anonymous",
      apiId: "local",
      domainName: host,
      domainPrefix: host.split(".")[0] ?? host,
      http: {
        method: (
          req.method ?? "GET"
        ).toUpperCase() as LambdaFunctionUrlEvent["requestContext"]["http"]["method"],
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp,
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: randomUUID(),
      routeKey: "$default",
      stage: "$default",
      time: clfTime(new Date(nowMs)),
      timeEpoch: nowMs,
    },
    ...(body.length > 0 ? { body: text ? body.toString("utf8") : body.toString("base64") } : {}),
    isBase64Encoded: body.length > 0 && !text,
  };
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** `05/Aug/2022:08:14:39 +0000`, the form of `requestContext.time`. */
function clfTime(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return (
    `${pad(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`
  );
}

function toContext(requestId: string, options: FunctionUrlServerOptions): Context {
  const functionName = options.functionName ?? "local-function-url";
  const deadlineMs = Date.now() + (options.timeoutMs ?? 30_000);
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: "128",
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: "local",
    getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

interface StructuredResult {
  statusCode: number;
  headers?: Record<string, string | number | boolean>;
  cookies?: string[];
  body?: string;
  isBase64Encoded?: boolean;
}

function isStructured(result: unknown): result is StructuredResult {
  return (
    typeof result === "object" &&
    result !== null &&
    typeof (result as StructuredResult).statusCode === "number"
  );
}

function writeResult(res: ServerResponse, result: unknown): void {
  if (!isStructured(result)) {
    const body = typeof result === "string" ? result : (JSON.stringify(result) ?? "");
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
    return;
  }
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {}))
    headers[name.toLowerCase()] = String(value);
  if (result.cookies?.length) headers["set-cookie"] = result.cookies;
  headers["content-type"] ??= "application/json";
  const body = result.body ?? "";
  res.writeHead(result.statusCode, headers);
  res.end(result.isBase64Encoded ? Buffer.from(body, "base64") : body);
}
