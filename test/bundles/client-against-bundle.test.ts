import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReauthRequired, TokenClient } from "../../lib/client/index.js";
import { buildBundle } from "../../lib/infra/build-bundles.js";
import { FunctionName } from "../../lib/infra/bundling.js";
import type { DemoConnection, LocalStack } from "../../lib/local/local-stack.js";
import { startLocalStack } from "../../lib/local/local-stack.js";

type Handler = (event: unknown, context: unknown) => Promise<unknown>;

/**
 * The consumer client library against the token-vend bundle the stack deploys, behind a local
 * endpoint that speaks Lambda's Invoke API (POST /2015-03-31/functions/NAME/invocations): the
 * real LambdaClient, the real bundle, dynalite and the simulator; nothing mocked.
 */
let dir: string;
let stack: LocalStack;
let server: Server;
let endpoint: string;
let invocations = 0;
let conn: DemoConnection;

function startInvokeEndpoint(handler: Handler): Promise<Server> {
  const lambda = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      invocations += 1;
      const event: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      handler(event, { awsRequestId: `req-${invocations}`, functionName: "token-vend" }).then(
        (answer) => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify(answer));
        },
        (error: Error) => {
          // What the Lambda service answers for a function error: 200, X-Amz-Function-Error, the error as payload.
          res.writeHead(200, { "content-type": "application/json", "x-amz-function-error": "Unhandled" });
          res.end(JSON.stringify({ errorType: error.name, errorMessage: error.message }));
        },
      );
    });
  });
  return new Promise((resolve) => lambda.listen(0, "127.0.0.1", () => resolve(lambda)));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "client-bundle-"));
  const [bundle, local] = await Promise.all([buildBundle(FunctionName.TokenVend, dir), startLocalStack()]);
  stack = local;
  conn = await stack.addConnection("client-conn");
  await stack.seed(conn);
  // The bundle reads its environment when it loads, as on Lambda.
  Object.assign(process.env, stack.env);
  const { handler } = (await import(pathToFileURL(bundle.file).href)) as { handler: Handler };
  server = await startInvokeEndpoint(handler);
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

function client(): TokenClient {
  return new TokenClient({
    functionName: "token-vend",
    lambda: new LambdaClient({
      endpoint,
      region: "eu-west-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    }),
  });
}

describe("the client library against the built token-vend bundle", () => {
  it("gets a token Exact accepts, and serves the next call from its cache", async () => {
    const tokens = client();
    const before = invocations;

    const answer = await tokens.getAccessToken(conn.connectionId);
    const again = await tokens.getAccessToken(conn.connectionId);

    expect(answer).toMatchObject({
      tokenType: "Bearer",
      generation: 1,
      baseUrl: stack.sim.url,
      division: expect.any(Number),
    });
    expect(again.accessToken).toBe(answer.accessToken);
    expect(invocations - before).toBe(1);
    const me = await fetch(`${answer.baseUrl}/api/v1/current/Me`, {
      headers: { authorization: `Bearer ${answer.accessToken}` },
    });
    expect(me.status).toBe(200);
  });

  it("turns the bundle's function errors back into typed errors", async () => {
    await stack.addConnection("never-seeded");

    const error = await client()
      .getAccessToken("never-seeded")
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ReauthRequired);
    expect((error as Error).message).toContain("exact-broker connect --id never-seeded");
  });
});
