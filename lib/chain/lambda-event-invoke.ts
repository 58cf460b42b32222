import { Sha256 } from "@smithy/core/checksum";
import { HttpRequest } from "@smithy/core/protocols";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialsProvider } from "../client/identity-signer.js";

/**
 * One asynchronous Lambda invoke (`InvocationType: Event`) as a single SigV4-signed HTTP call:
 * what `LambdaClient.send(new InvokeCommand(...))` sends, without the 73 KB client in every
 * bundle that heals (issue 12). The API: POST /2015-03-31/functions/{name}/invocations with
 * `X-Amz-Invocation-Type: Event`; Lambda queues the event and answers 202.
 */

export interface LambdaEventInvokeOptions {
  /** The function's name or ARN. */
  readonly functionName: string;
  /** The event, sent as JSON. */
  readonly payload: unknown;
  readonly region: string;
  /** Resolves the caller's credentials on every call (the provider caches them). */
  readonly credentials: AwsCredentialsProvider;
  /** Where Lambda is: only tests change it. @default https://lambda.<region>.amazonaws.com */
  readonly endpoint?: string;
  /** Per attempt. */
  readonly httpTimeoutMs: number;
  /** Attempts for a call that failed before Lambda accepted it (no answer, 429, 5xx), as the SDK retries. */
  readonly maxAttempts: number;
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** Waits between attempts. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Lambda's answer to an accepted asynchronous invoke. */
export const EVENT_ACCEPTED_STATUS = 202;
/** The Invoke API's version path. */
const API_VERSION = "2015-03-31";
/** First back-off between attempts; doubled each time, with full jitter (the SDK's standard retry). */
const RETRY_BASE_MS = 100;
/** How much of an error answer's message a log line carries. */
const MESSAGE_MAX_CHARS = 300;

/** The regional Lambda endpoint (commercial partition; the stack deploys only there). */
export function lambdaEndpointFor(region: string): string {
  return `https://lambda.${region}.amazonaws.com`;
}

/**
 * An invoke Lambda did not accept. `name` is Lambda's error code (`ResourceNotFoundException`,
 * `AccessDeniedException`, `TooManyRequestsException`, …) as the SDK names its exceptions, or
 * `LambdaUnreachable` when no answer came; the message never holds a credential or a header.
 */
export class LambdaInvokeError extends Error {
  /** The HTTP status Lambda answered; absent when it did not answer. */
  readonly statusCode: number | undefined;

  constructor(code: string, message: string, options?: ErrorOptions & { statusCode?: number }) {
    super(message, options);
    this.name = code;
    this.statusCode = options?.statusCode;
  }

  /** No answer, throttled, or Lambda's own fault: another attempt may be accepted. */
  get retryable(): boolean {
    return this.statusCode === undefined || this.statusCode === 429 || this.statusCode >= 500;
  }
}

/**
 * Invokes `functionName` asynchronously and resolves once Lambda accepted the event (202).
 * @throws LambdaInvokeError when Lambda refused it, or did not answer in any attempt
 */
export async function invokeLambdaEvent(options: LambdaEventInvokeOptions): Promise<void> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await attemptInvoke(options);
    } catch (error) {
      if (!(error instanceof LambdaInvokeError) || !error.retryable || attempt >= options.maxAttempts) {
        throw error;
      }
      await sleep(Math.random() * RETRY_BASE_MS * 2 ** (attempt - 1));
    }
  }
}

async function attemptInvoke(options: LambdaEventInvokeOptions): Promise<void> {
  const endpoint = new URL(options.endpoint ?? lambdaEndpointFor(options.region));
  const body = JSON.stringify(options.payload);
  // Encoded as the SDK encodes it (an ARN's colons too); the signer encodes the path once more,
  // as SigV4 wants for every service but S3.
  const path = `/${API_VERSION}/functions/${encodeURIComponent(options.functionName)}/invocations`;
  const request = new HttpRequest({
    method: "POST",
    protocol: endpoint.protocol,
    hostname: endpoint.hostname,
    ...(endpoint.port ? { port: Number(endpoint.port) } : {}),
    path,
    headers: {
      host: endpoint.host,
      "content-type": "application/json",
      "x-amz-invocation-type": "Event",
    },
    body,
  });
  const signer = new SignatureV4({
    service: "lambda",
    region: options.region,
    credentials: options.credentials,
    sha256: Sha256,
  });
  const signed = await signer.sign(request);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(signed.headers)) {
    // fetch sets Host from the URL itself and refuses to be told.
    if (name.toLowerCase() !== "host") headers[name] = String(value);
  }
  const fetchFn = options.fetch ?? fetch;
  let response: Response;
  try {
    response = await fetchFn(new URL(path, endpoint), {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.timeout(options.httpTimeoutMs),
    });
  } catch (error) {
    throw new LambdaInvokeError(
      "LambdaUnreachable",
      `no answer from ${endpoint.host} within ${options.httpTimeoutMs} ms`,
      { cause: error },
    );
  }
  const text = await response.text().catch(() => "");
  if (response.status === EVENT_ACCEPTED_STATUS) return;
  throw refusal(response, text);
}

/**
 * Lambda's error answer as the SDK reads it: the code from `x-amzn-errortype` (before any `:`),
 * else the body's `__type`/`Type`/`code`; the message from the body's `message`/`Message`.
 */
function refusal(response: Response, text: string): LambdaInvokeError {
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === "object") body = parsed as Record<string, unknown>;
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  const field = (...names: string[]): string | undefined => {
    for (const name of names) {
      const value = body[name];
      if (typeof value === "string" && value !== "") return value;
    }
    return undefined;
  };
  const rawCode =
    response.headers.get("x-amzn-errortype") ?? field("__type", "code") ?? `Lambda${response.status}`;
  // `__type` may carry a namespace (`com.amazonaws#Code`); the header a URL after a colon.
  const code = rawCode.split(":")[0]?.split("#").pop() || `Lambda${response.status}`;
  const message = (field("message", "Message") ?? `Lambda answered ${response.status}`).slice(
    0,
    MESSAGE_MAX_CHARS,
  );
  return new LambdaInvokeError(code, message, { statusCode: response.status });
}
