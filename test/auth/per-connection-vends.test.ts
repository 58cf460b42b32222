import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createBroker } from "../../lib/broker.js";
import { runCli } from "../../lib/cli/main.js";
import { AccessDenied, type AwsCredentials, IdentitySigner, TokenClient } from "../../lib/client/index.js";
import { createTokenVendHandler } from "../../lib/handlers/token-vend-handler.js";
import { localDynamoClient } from "../../lib/local/dynalite.js";
import {
  type DemoConnection,
  LOCAL_BROKER_SERVER_ID,
  type LocalStack,
  startLocalStack,
} from "../../lib/local/local-stack.js";
import { createLogger } from "../../lib/log/logger.js";
import { describeWithMoto } from "../support/tool-gate.js";
import { type InvokeEndpoint, startInvokeEndpoint } from "./lambda-invoke-endpoint.js";
import { type MotoIdentities, startMotoIdentities } from "./moto-identities.js";

// End to end, as in AWS: a consumer's client library signs its identity with credentials moto
// issued, invokes token-vend over Lambda's Invoke API (a local endpoint), token-vend verifies the
// identity with moto_server (signatures enforced) and checks the grant the CLI wrote in dynalite,
// then vends from the simulator. The only change from AWS is where STS, DynamoDB and Exact are.

const logger = createLogger({ serviceName: "token-vend" });

/** A DynamoDB client that records the key of every item read, as `GetItem CONN#acme`. */
function recordingDynamo(endpoint: string): { client: DynamoDBClient; reads: string[] } {
  const reads: string[] = [];
  const client = localDynamoClient(endpoint);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const key = (args.input as { Key?: { pk?: { S?: string } } }).Key?.pk?.S;
      if (String(context.commandName) === "GetItemCommand" && key) reads.push(key);
      return next(args);
    },
    { step: "initialize", name: "recordReads" },
  );
  return { client, reads };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected a refusal");
    },
    (error: Error) => error,
  );
}

describeWithMoto("per-connection authorization, end to end", () => {
  let ids: MotoIdentities;
  let stack: LocalStack;
  let acme: DemoConnection;
  let beta: DemoConnection;
  let dynamo: ReturnType<typeof recordingDynamo>;
  let tokenVend: InvokeEndpoint;
  const cli = async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(argv, {
      out: (line) => out.push(line),
      err: (line) => err.push(line),
      env: stack.env,
      dynamo: stack.dynamo.client,
    });
    return { code, out: out.join("\n"), err: err.join("\n") };
  };
  /** A new token-vend container of this stack (empty caches). */
  const container = () =>
    createTokenVendHandler(stack.broker({ log: logger, dynamo: dynamo.client }), logger);
  const consumer = (credentials: AwsCredentials | undefined, lambda = tokenVend.lambda) =>
    new TokenClient({
      lambda,
      functionName: "token-vend",
      region: "eu-west-1",
      stsEndpoint: ids.moto.endpoint,
      ...(credentials ? { serverId: LOCAL_BROKER_SERVER_ID, credentials: async () => credentials } : {}),
    });
  const chainOf = (connection: DemoConnection) =>
    stack.sim.stats().chains[`${connection.clientId}/${connection.username}`];

  beforeAll(async () => {
    ids = await startMotoIdentities();
    stack = await startLocalStack({ stsEndpoint: ids.moto.endpoint });
    acme = await stack.addConnection("acme");
    beta = await stack.addConnection("beta");
    await stack.seed(acme);
    await stack.seed(beta);
    dynamo = recordingDynamo(stack.dynamo.endpoint);
    tokenVend = await startInvokeEndpoint(container());
  }, 60_000);
  afterAll(async () => {
    await tokenVend?.close();
    dynamo?.client.destroy();
    await stack?.close();
    await ids?.moto.close();
  });

  it("serves a consumer the connection it was granted, and AccessDenied for another, before any chain work", async () => {
    const granted = await cli("grant", "--id", "acme", "--principal", ids.roleA.arn);
    const tokens = consumer(ids.roleA.credentials);
    const betaBefore = chainOf(beta);
    dynamo.reads.length = 0;

    const answer = await tokens.getAccessToken("acme");
    const refused = await failure(tokens.getAccessToken("beta"));

    expect(granted).toMatchObject({ code: 0, out: expect.stringContaining("role/consumer-a") });
    expect(answer).toMatchObject({ tokenType: "Bearer", baseUrl: stack.sim.url });
    const me = await fetch(`${answer.baseUrl}/api/v1/current/Me`, {
      headers: { authorization: `Bearer ${answer.accessToken}` },
    });
    expect(me.status).toBe(200);
    expect(refused).toBeInstanceOf(AccessDenied);
    expect(refused.name).toBe("AccessDenied");
    expect(refused.message).toBe(
      'arn:aws:sts::123456789012:assumed-role/consumer-a/consumer-a-session has no grant for connection "beta"; ' +
        "an operator grants it with: exact-broker grant --id beta --principal arn:aws:iam::123456789012:role/consumer-a",
    );
    expect(chainOf(beta)).toEqual(betaBefore);
    expect(dynamo.reads).not.toContain("CONN#beta");
    expect(dynamo.reads).toContain("GRANTS#beta");
  });

  it("matches a role granted by its ARN with a path, and an IAM user on its ARN", async () => {
    await cli("grant", "--id", "beta", "--principal", ids.user.arn);

    const asUser = await consumer(ids.user.credentials).getAccessToken("beta");
    const asRole = await consumer(ids.roleA.credentials).getAccessToken("acme");

    expect(ids.roleA.arn).toContain(":role/apps/consumer-a");
    expect(asUser.tokenType).toBe("Bearer");
    expect(asRole.tokenType).toBe("Bearer");
  });

  it("answers a warm container's vend with no grant read (its grant cache)", async () => {
    const handler = container();
    const vend = await startInvokeEndpoint(handler);
    const tokens = consumer(ids.roleA.credentials, vend.lambda);
    try {
      await tokens.getAccessToken("acme");
      tokens.invalidate("acme");
      dynamo.reads.length = 0;

      await tokens.getAccessToken("acme");

      expect(vend.invocations()).toBe(2);
      expect(dynamo.reads.filter((key) => key.startsWith("GRANTS#"))).toEqual([]);
    } finally {
      await vend.close();
    }
  });

  it("refuses a consumer that sends no identity, saying how to configure it", async () => {
    const error = await failure(consumer(undefined).getAccessToken("acme"));

    expect(error).toBeInstanceOf(AccessDenied);
    expect(error.message).toContain("TOKEN_VEND_SERVER_ID");
  });

  it("refuses an identity STS does not accept (a forged signature)", async () => {
    const forged = { ...ids.roleA.credentials, secretAccessKey: "not-the-role-secret" };

    const error = await failure(consumer(forged).getAccessToken("acme"));

    expect(error).toBeInstanceOf(AccessDenied);
    expect(error.message).toContain("SignatureDoesNotMatch");
  });

  it("stops serving a new container once the CLI revoked the grant", async () => {
    await cli("grant", "--id", "acme", "--principal", ids.roleB.arn);
    const before = await consumer(ids.roleB.credentials).getAccessToken("acme");

    const revoked = await cli("revoke", "--id", "acme", "--principal", ids.roleB.arn);
    const vend = await startInvokeEndpoint(container());
    try {
      const error = await failure(consumer(ids.roleB.credentials, vend.lambda).getAccessToken("acme"));

      expect(before.tokenType).toBe("Bearer");
      expect(revoked.code).toBe(0);
      expect(error).toBeInstanceOf(AccessDenied);
    } finally {
      await vend.close();
    }
  });

  it("serves under stackWide what perConnection would refuse, and says so", async () => {
    // The same stack switched to stackWide, as a deployment in its migration period runs.
    const broker = createBroker(
      { ...stack.env, VEND_AUTHORIZATION: "stackWide" },
      { log: logger, dynamo: dynamo.client, stsEndpoint: ids.moto.endpoint },
    );
    const vend = await startInvokeEndpoint(createTokenVendHandler(broker, logger));
    const identity = await new IdentitySigner({
      serverId: LOCAL_BROKER_SERVER_ID,
      region: "eu-west-1",
      stsEndpoint: ids.moto.endpoint,
      credentials: async () => ids.roleB.credentials,
    }).identity();
    try {
      const served = await consumer(ids.roleB.credentials, vend.lambda).getAccessToken("beta");
      const decision = await broker.authorizer.authorize("beta", identity);

      expect(served.tokenType).toBe("Bearer");
      expect(decision).toEqual({
        caller: "arn:aws:sts::123456789012:assumed-role/consumer-b/consumer-b-session",
        outcome: "wouldDeny",
      });
    } finally {
      await vend.close();
    }
  });
});
