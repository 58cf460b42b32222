import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Sha256 } from "@smithy/core/checksum";
import { HttpRequest } from "@smithy/core/protocols";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { EngineLog } from "../../lib/chain/engine-deps.js";
import { LambdaHealTrigger } from "../../lib/chain/heal-trigger.js";

// A local endpoint that checks what the Lambda service checks before it queues an event: the
// SigV4 signature, recomputed here with AWS's own signer from the request as it arrived, for
// service "lambda" in the request's region. moto_server (test/events/event-publishers.test.ts)
// answers the real API's codes but shows neither the signature nor the payload.

const REGION = "eu-west-1";
const CREDENTIALS = {
  accessKeyId: "AKIDEXAMPLEHEAL",
  secretAccessKey: "heal-secret-key-never-logged",
  sessionToken: "heal-session-token-never-logged",
};

interface Received {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly signatureValid: boolean;
}

type Answer = { status: number; headers?: Record<string, string>; body?: string } | "hang";

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Recomputes the request's signature from the headers it names as signed and compares. */
async function signatureValid(req: IncomingMessage, body: string): Promise<boolean> {
  const authorization = String(req.headers.authorization ?? "");
  const signedHeaders = /SignedHeaders=([^,]+)/.exec(authorization)?.[1]?.split(";") ?? [];
  const amzDate = String(req.headers["x-amz-date"] ?? "");
  const headers: Record<string, string> = {};
  for (const name of signedHeaders) headers[name] = String(req.headers[name] ?? "");
  const [host, port] = String(req.headers.host).split(":");
  const signer = new SignatureV4({
    service: "lambda",
    region: REGION,
    credentials: CREDENTIALS,
    sha256: Sha256,
  });
  const expected = await signer.sign(
    new HttpRequest({
      method: req.method ?? "",
      protocol: "http:",
      hostname: host ?? "",
      ...(port ? { port: Number(port) } : {}),
      path: req.url ?? "",
      headers,
      body,
    }),
    {
      signingDate: new Date(
        `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13)}`,
      ),
    },
  );
  return authorization !== "" && expected.headers.authorization === authorization;
}

async function startLambdaEndpoint(answers: Answer[]) {
  const received: Received[] = [];
  const server: Server = createServer(async (req, res) => {
    const body = await readBody(req);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) headers[name] = String(value);
    received.push({
      method: req.method ?? "",
      path: req.url ?? "",
      headers,
      body,
      signatureValid: await signatureValid(req, body),
    });
    const answer = answers.shift() ?? { status: 202 };
    if (answer === "hang") return;
    res.writeHead(answer.status, answer.headers ?? {});
    res.end(answer.body ?? "");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function capturingLog(): EngineLog & { lines: Array<[string, string, unknown]> } {
  const lines: Array<[string, string, unknown]> = [];
  return {
    lines,
    info: (message, ...extra) => lines.push(["info", message, extra[0]]),
    warn: (message, ...extra) => lines.push(["warn", message, extra[0]]),
    error: (message, ...extra) => lines.push(["error", message, extra[0]]),
  };
}

/** The `error` a trigger logged with its line, as the logger receives it. */
const loggedError = (
  line: [string, string, unknown] | undefined,
): (Error & { statusCode?: number }) | undefined => (line?.[2] as { error?: Error } | undefined)?.error;

/** A log line as it would be written: the error with its name, message and cause. */
function written(line: [string, string, unknown] | undefined): string {
  const extra = line?.[2] as { error?: Error } | undefined;
  const error = extra?.error;
  return JSON.stringify({
    ...extra,
    error: error && { name: error.name, message: error.message, cause: String(error.cause ?? "") },
  });
}

describe("LambdaHealTrigger", () => {
  let endpoint: Awaited<ReturnType<typeof startLambdaEndpoint>> | undefined;
  afterEach(async () => {
    await endpoint?.close();
    endpoint = undefined;
  });

  const triggerAt = (
    url: string,
    log: EngineLog,
    overrides: Partial<ConstructorParameters<typeof LambdaHealTrigger>[0]> = {},
  ) =>
    new LambdaHealTrigger({
      functionName: "exact-token-broker-fallback-login",
      log,
      region: REGION,
      endpoint: url,
      credentials: async () => CREDENTIALS,
      ...overrides,
    });

  describe("trigger", () => {
    it("sends one signed asynchronous invoke of fallback-login with the connection ID only", async () => {
      endpoint = await startLambdaEndpoint([{ status: 202 }]);
      const log = capturingLog();

      triggerAt(endpoint.endpoint, log).trigger("acme");

      await vi.waitFor(() => expect(endpoint?.received).toHaveLength(1));
      const [request] = endpoint.received;
      expect(request).toMatchObject({
        method: "POST",
        path: "/2015-03-31/functions/exact-token-broker-fallback-login/invocations",
        signatureValid: true,
      });
      expect(request?.headers["x-amz-invocation-type"]).toBe("Event");
      expect(request?.headers["x-amz-security-token"]).toBe(CREDENTIALS.sessionToken);
      expect(request?.headers.authorization).toContain(`/${REGION}/lambda/aws4_request`);
      expect(JSON.parse(request?.body ?? "")).toEqual({ connectionId: "acme" });
      expect(log.lines).toEqual([]);
    });

    it("signs a function ARN's path as the SDK sends it, colons encoded", async () => {
      endpoint = await startLambdaEndpoint([{ status: 202 }]);
      const arn = "arn:aws:lambda:eu-west-1:123456789012:function:fallback-login";

      triggerAt(endpoint.endpoint, capturingLog(), { functionName: arn }).trigger("acme");

      await vi.waitFor(() => expect(endpoint?.received).toHaveLength(1));
      expect(endpoint.received[0]?.path).toBe(`/2015-03-31/functions/${encodeURIComponent(arn)}/invocations`);
      expect(endpoint.received[0]?.signatureValid).toBe(true);
    });

    it("logs Lambda's refusal by its error code, without any credential, and never throws", async () => {
      endpoint = await startLambdaEndpoint([
        {
          status: 403,
          headers: { "x-amzn-errortype": "AccessDeniedException:http://internal.amazon.com/coral/" },
          body: JSON.stringify({ Message: "User is not authorized to perform: lambda:InvokeFunction" }),
        },
      ]);
      const log = capturingLog();

      expect(() => triggerAt(endpoint?.endpoint ?? "", log).trigger("acme")).not.toThrow();

      await vi.waitFor(() => expect(log.lines).toHaveLength(1));
      expect(log.lines[0]?.slice(0, 2)).toEqual(["error", "could not invoke fallback-login"]);
      const error = loggedError(log.lines[0]);
      expect(error).toMatchObject({ name: "AccessDeniedException", statusCode: 403 });
      expect(error?.message).toContain("not authorized");
      const line = written(log.lines[0]);
      for (const secret of [CREDENTIALS.secretAccessKey, CREDENTIALS.sessionToken]) {
        expect(line).not.toContain(secret);
      }
      // A refusal is final: no second attempt.
      expect(endpoint.received).toHaveLength(1);
    });

    it("tries again after a throttle or a 5xx, and logs nothing once Lambda accepts", async () => {
      endpoint = await startLambdaEndpoint([
        { status: 429, headers: { "x-amzn-errortype": "TooManyRequestsException" }, body: "{}" },
        { status: 503, body: "<html>busy</html>" },
        { status: 202 },
      ]);
      const log = capturingLog();

      triggerAt(endpoint.endpoint, log).trigger("acme");

      await vi.waitFor(() => expect(endpoint?.received).toHaveLength(3));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(endpoint.received.every((request) => request.signatureValid)).toBe(true);
      expect(log.lines).toEqual([]);
    });

    it("gives up after its timeout on every attempt and logs LambdaUnreachable", async () => {
      endpoint = await startLambdaEndpoint(["hang", "hang"]);
      const log = capturingLog();

      triggerAt(endpoint.endpoint, log, { httpTimeoutMs: 200, maxAttempts: 2 }).trigger("acme");

      await vi.waitFor(() => expect(log.lines).toHaveLength(1), { timeout: 5_000 });
      expect(endpoint.received).toHaveLength(2);
      const error = loggedError(log.lines[0]);
      expect(error?.name).toBe("LambdaUnreachable");
      expect(error?.message).toContain("within 200 ms");
    });

    it("logs, and sends nothing, without a region", async () => {
      endpoint = await startLambdaEndpoint([]);
      const log = capturingLog();
      vi.stubEnv("AWS_REGION", "");
      vi.stubEnv("AWS_DEFAULT_REGION", "");
      try {
        triggerAt(endpoint.endpoint, log, { region: undefined }).trigger("acme");
        await vi.waitFor(() => expect(log.lines).toHaveLength(1));
      } finally {
        vi.unstubAllEnvs();
      }
      expect(loggedError(log.lines[0])?.message).toContain("AWS_REGION");
      expect(endpoint.received).toEqual([]);
    });
  });

  describe("handedOff", () => {
    it("resolves at once when nothing was triggered", async () => {
      endpoint = await startLambdaEndpoint([]);
      await expect(triggerAt(endpoint.endpoint, capturingLog()).handedOff(0)).resolves.toBeUndefined();
    });

    it("resolves only once Lambda has answered every invoke triggered", async () => {
      endpoint = await startLambdaEndpoint([{ status: 202 }, { status: 202 }]);
      const log = capturingLog();
      const trigger = triggerAt(endpoint.endpoint, log);

      trigger.trigger("acme");
      trigger.trigger("globex");
      await trigger.handedOff(5_000);

      // Both requests reached Lambda before the handler could answer.
      expect(endpoint.received.map((request) => JSON.parse(request.body).connectionId).sort()).toEqual([
        "acme",
        "globex",
      ]);
      expect(log.lines).toEqual([]);
    });

    it("waits for a failing invoke's retries and its log line, not for a success", async () => {
      endpoint = await startLambdaEndpoint([
        { status: 503, body: "busy" },
        { status: 503, body: "busy" },
      ]);
      const log = capturingLog();
      const trigger = triggerAt(endpoint.endpoint, log, { maxAttempts: 2 });

      trigger.trigger("acme");
      await trigger.handedOff(5_000);

      expect(endpoint.received).toHaveLength(2);
      expect(log.lines.map(([level, message]) => [level, message])).toEqual([
        ["error", "could not invoke fallback-login"],
      ]);
    });

    it("stops waiting at its timeout, and says how many invokes were still unanswered", async () => {
      endpoint = await startLambdaEndpoint(["hang"]);
      const log = capturingLog();
      const trigger = triggerAt(endpoint.endpoint, log, { httpTimeoutMs: 10_000, maxAttempts: 1 });

      trigger.trigger("acme");
      const startMs = performance.now();
      await trigger.handedOff(150);

      expect(performance.now() - startMs).toBeLessThan(5_000);
      expect(log.lines).toEqual([
        ["warn", "fallback-login invokes still unanswered at the deadline", { invokes: 1 }],
      ]);
    });
  });
});
