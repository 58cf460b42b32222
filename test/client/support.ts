import type { InvokeCommandInput, InvokeCommandOutput } from "@aws-sdk/client-lambda";
import type { AccessToken } from "../../lib/client/index.js";

export const T0 = Date.parse("2026-11-26T12:00:00.000Z");

/** Distinctive token strings, so a test can look for them anywhere in an error. */
export function tokenFor(generation: number): string {
  return `eyJ0eXAiOiJKV1Qi.client-test-token-${generation}.c2lnbmF0dXJl`;
}

export function vendAnswer(
  generation: number,
  validForSeconds: number,
  nowMs: number,
  overrides: Partial<AccessToken> = {},
): AccessToken {
  return {
    accessToken: tokenFor(generation),
    tokenType: "Bearer",
    expiresAt: new Date(nowMs + validForSeconds * 1000).toISOString(),
    generation,
    baseUrl: "https://start.exactonline.nl",
    division: 123456,
    ...overrides,
  };
}

function bytes(text: string): InvokeCommandOutput["Payload"] {
  return new TextEncoder().encode(text) as InvokeCommandOutput["Payload"];
}

/** What Lambda answers for a successful RequestResponse invoke. */
export function ok(body: unknown): InvokeCommandOutput {
  return {
    $metadata: { httpStatusCode: 200 },
    StatusCode: 200,
    ExecutedVersion: "$LATEST",
    Payload: bytes(typeof body === "string" ? body : JSON.stringify(body)),
  };
}

/** What Lambda answers when the function threw: status 200, `FunctionError`, the runtime's error JSON. */
export function functionError(
  errorType: string | undefined,
  errorMessage: string | undefined,
): InvokeCommandOutput {
  const payload: Record<string, unknown> = { trace: ["Error: …", "    at …"] };
  if (errorType !== undefined) payload.errorType = errorType;
  if (errorMessage !== undefined) payload.errorMessage = errorMessage;
  return { ...ok(payload), FunctionError: "Unhandled" };
}

/** The event the client sent, decoded from the InvokeCommand's Payload (string or bytes). */
export function sentEvent(input: InvokeCommandInput | undefined): unknown {
  const payload = input?.Payload;
  const text = typeof payload === "string" ? payload : new TextDecoder().decode(payload as Uint8Array);
  return JSON.parse(text);
}

/** A promise with its resolve/reject at hand (Promise.withResolvers is Node 22+). */
export function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
