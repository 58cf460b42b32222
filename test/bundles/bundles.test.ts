import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LambdaFunctionUrlSchema } from "@aws-lambda-powertools/parser/schemas";
import type { LambdaFunctionUrlEvent } from "@aws-lambda-powertools/parser/types";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { type BuiltBundle, buildBundles } from "../../lib/infra/build-bundles.js";
import { FunctionName } from "../../lib/infra/bundling.js";
import { EngineSettings, functionTimeouts } from "../../lib/infra/function-settings.js";
import type { DemoConnection, LocalStack } from "../../lib/local/local-stack.js";
import { startLocalStack } from "../../lib/local/local-stack.js";
import { createConnectFlow } from "../../lib/onboarding/connect-flow.js";
import { createLinkKeySource } from "../../lib/onboarding/link-key-source.js";
import { forceStatus } from "../support/force-status.js";
import { findLeaks } from "../support/leak-guard.js";
import { type Invocation, invokeBundle } from "./bundle-runner.js";

/**
 * The four bundles the stack deploys, built with the stack's esbuild settings
 * (lib/infra/bundling.ts), each loaded in a fresh Node process and invoked end to end against
 * dynalite and the Exact simulator. Tokens live 6 s (refreshable after 3 s) so a scheduled
 * refresh can be watched in real time.
 */
const SIM = { accessTtlSeconds: 6, refreshAfterSeconds: 3 } as const;

let dir: string;
let stack: LocalStack;
const bundles = new Map<FunctionName, BuiltBundle>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "broker-bundles-"));
  const [built, local] = await Promise.all([
    buildBundles(dir),
    // A small margin, so the refresh run waits ~0.1 s past the window, not a whole second.
    startLocalStack({ sim: SIM, env: { REFRESH_MARGIN_MS: "100" } }),
  ]);
  for (const bundle of built) bundles.set(bundle.name, bundle);
  stack = local;
}, 60_000);

afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Invokes a function's bundle with the local stack's broker environment. */
async function invoke<T>(
  name: FunctionName,
  event: unknown,
  env: Record<string, string> = {},
): Promise<Invocation<T>> {
  const bundle = bundles.get(name);
  if (!bundle) throw new Error(`no ${name} bundle`);
  // The local stack's env has no FALLBACK_LOGIN_FUNCTION_NAME: a heal would run in-process.
  expect(stack.env.FALLBACK_LOGIN_FUNCTION_NAME).toBeUndefined();
  const result = await invokeBundle<T>(
    bundle.file,
    event,
    {
      ...stack.env,
      POWERTOOLS_SERVICE_NAME: name,
      POWERTOOLS_METRICS_NAMESPACE: "ExactTokenBroker",
      ...env,
    },
    // The remaining time each function starts with in AWS: the timeout the stack deploys it with.
    functionTimeouts(EngineSettings)[name].toMilliseconds(),
  );
  // Whatever the bundle printed (Powertools log and metric lines) holds no token or secret.
  expect(findLeaks(result.output), `${name} printed a token or secret`).toEqual([]);
  return result;
}

function answerOf<T>(result: Invocation<T>): T {
  if (!result.ok) throw new Error(`invocation failed: ${result.errorType}: ${result.errorMessage}`);
  return result.value;
}

let counter = 0;
async function seededConnection(): Promise<DemoConnection> {
  counter += 1;
  const conn = await stack.addConnection(`bundle-${counter}`);
  await stack.seed(conn);
  return conn;
}

async function generationOf(connectionId: string): Promise<number> {
  const record = await stack.store().get(connectionId);
  if (!record) throw new Error(`${connectionId} is gone`);
  return record.generation;
}

/**
 * A Function URL request (payload 2.0) for `url`, as AWS would build it: a posted form arrives
 * base64 (`isBase64Encoded`), cookies as the `cookies` array.
 */
function functionUrlEvent(
  url: string,
  request: { readonly form?: Record<string, string>; readonly cookies?: string[] } = {},
): LambdaFunctionUrlEvent {
  const { host, pathname, search, searchParams } = new URL(url);
  const nowMs = Date.now();
  const form = request.form ? new URLSearchParams(request.form).toString() : undefined;
  const event: LambdaFunctionUrlEvent = {
    version: "2.0",
    routeKey: "$default",
    rawPath: pathname,
    rawQueryString: search.replace(/^\?/, ""),
    ...(request.cookies ? { cookies: request.cookies } : {}),
    headers: {
      host,
      "x-forwarded-proto": "https",
      "user-agent": "bundle-test",
      ...(form !== undefined ? { "content-type": "application/x-www-form-urlencoded" } : {}),
    },
    ...(searchParams.size > 0 ? { queryStringParameters: Object.fromEntries(searchParams) } : {}),
    requestContext: {
      accountId: "anonymous",
      apiId: "bundle-test",
      domainName: host,
      domainPrefix: host.split(".")[0] ?? host,
      http: {
        method: form !== undefined ? "POST" : "GET",
        path: pathname,
        protocol: "HTTP/1.1",
        sourceIp: "203.0.113.7",
        userAgent: "bundle-test",
      },
      requestId: `req-${nowMs}`,
      routeKey: "$default",
      stage: "$default",
      time: "01/Jan/2030:00:00:00 +0000",
      timeEpoch: nowMs,
    },
    ...(form !== undefined ? { body: Buffer.from(form).toString("base64") } : {}),
    isBase64Encoded: form !== undefined,
  };
  expect(LambdaFunctionUrlSchema.safeParse(event).success).toBe(true);
  return event;
}

interface VendValue {
  readonly accessTokenSha256: string;
  readonly tokenType: string;
  readonly expiresAt: string;
  readonly expiresInSeconds: number;
  readonly generation: number;
  readonly baseUrl: string;
  readonly division: number | null;
  readonly clientId: string;
}

describe("the bundles the stack deploys, in fresh Node processes", () => {
  it("keep the login driver out of every bundle but fallback-login's", () => {
    for (const [name, bundle] of bundles) {
      const code = readFileSync(bundle.file, "utf8");
      expect(code.includes("SelfAsserted"), name).toBe(name === FunctionName.FallbackLogin);
    }
  });

  it("token-vend: vends the chain's current token", async () => {
    const conn = await seededConnection();

    const answer = answerOf(await invoke<VendValue>("token-vend", { connectionId: conn.connectionId }));

    expect(answer).toEqual({
      accessTokenSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      tokenType: "Bearer",
      expiresAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      expiresInSeconds: expect.any(Number),
      generation: await generationOf(conn.connectionId),
      baseUrl: stack.sim.url,
      division: expect.any(Number),
      clientId: conn.clientId,
    });
    expect(answer.generation).toBeGreaterThanOrEqual(1);
  });

  it("token-vend: refuses a bad event with a typed error, as Lambda hands it to the caller", async () => {
    const result = await invoke("token-vend", { connectionId: "no spaces allowed" });

    expect(result).toMatchObject({ ok: false, errorType: "ValidationError" });
  });

  it("refresh: a scheduled run refreshes a hot chain inside its window", async () => {
    const conn = await seededConnection();
    // A vend through the bundle makes the chain hot: the refresher now keeps it ahead of expiry.
    answerOf(
      await invoke<VendValue>("token-vend", { connectionId: conn.connectionId, minValiditySeconds: 1 }),
    );
    const before = await generationOf(conn.connectionId);
    await new Promise((resolve) => setTimeout(resolve, 3_200));

    const summary = answerOf(
      await invoke<{ due: number; outcomes: Record<string, number> }>("refresh", {
        version: "0",
        id: "bundle-test",
        "detail-type": "Scheduled Event",
        source: "aws.events",
        account: "000000000000",
        time: new Date().toISOString(),
        region: "eu-west-1",
        resources: ["arn:aws:events:eu-west-1:000000000000:rule/refresh"],
        detail: {},
      }),
    );

    expect(summary.outcomes.refreshed).toBeGreaterThanOrEqual(1);
    expect(summary.outcomes.failed).toBe(0);
    expect(await generationOf(conn.connectionId)).toBe(before + 1);
  });

  it("fallback-login: heals a broken chain by logging in again", async () => {
    const conn = await seededConnection();
    const generation = await generationOf(conn.connectionId);
    await forceStatus(stack, conn.connectionId, {
      status: ChainStatus.Broken,
      statusReason: "operator",
      atGeneration: generation,
    });

    const result = answerOf(
      await invoke<{ kind: string; generation: number }>("fallback-login", {
        connectionId: conn.connectionId,
      }),
    );

    expect(result).toEqual({ kind: "healed", generation: generation + 1 });
    const record = await stack.store().get(conn.connectionId);
    expect(record).toMatchObject({ status: ChainStatus.Active, generation: generation + 1 });
  });

  it("connect: a one-time link's page posts to Exact, and Exact's callback from that browser seeds the chain", async () => {
    counter += 1;
    const conn = await stack.addConnection(`bundle-connect-${counter}`);
    const flow = createConnectFlow(stack.broker(), {
      keys: createLinkKeySource(stack.env),
      dynamo: stack.dynamo.client,
    });
    const link = await flow.createConnectLink({ connectionId: conn.connectionId });

    const confirm = answerOf(
      await invoke<{ statusCode: number; body: string; cookies: string[] }>(
        "connect",
        functionUrlEvent(link.url),
      ),
    );
    expect(confirm.statusCode).toBe(200);
    expect(confirm.body).toContain('<form method="post" action="/start">');
    // The page sets the cookie; the browser sends it back as `name=value`, which a Function URL
    // passes in `cookies`, with the button's POST and with Exact's redirect to /callback.
    const cookie = confirm.cookies[0]?.split(";")[0] ?? "";
    expect(cookie).toMatch(/^__Host-connect-/);
    const start = answerOf(
      await invoke<{ statusCode: number; headers: Record<string, string> }>(
        "connect",
        functionUrlEvent(`${new URL(link.url).origin}/start`, {
          form: Object.fromEntries(new URL(link.url).searchParams),
          cookies: [cookie],
        }),
      ),
    );

    expect(start.statusCode).toBe(303);
    const location = new URL(start.headers.Location ?? start.headers.location ?? "");
    expect(`${location.origin}${location.pathname}`).toBe(`${stack.sim.url}/api/oauth2/auth`);
    expect(location.searchParams.get("redirect_uri")).toBe(conn.redirectUri);
    const state = location.searchParams.get("state") ?? "";
    const code = stack.sim.authorize({
      clientId: conn.clientId,
      username: conn.username,
      redirectUri: conn.redirectUri,
    });

    const callbackUrl = new URL(conn.redirectUri);
    callbackUrl.search = new URLSearchParams({ code, state }).toString();
    const page = answerOf(
      await invoke<{ statusCode: number; body: string }>(
        "connect",
        functionUrlEvent(callbackUrl.toString(), { cookies: [cookie] }),
      ),
    );

    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(conn.username);
    expect(page.body).not.toContain(code);
    expect(await stack.store().get(conn.connectionId)).toMatchObject({
      status: ChainStatus.Active,
      generation: 1,
    });
  });
});
