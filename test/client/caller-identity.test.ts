import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { GET_CALLER_IDENTITY_BODY, SERVER_ID_HEADER } from "../../lib/auth/caller-identity.js";
import {
  AccessDenied,
  type AwsCredentials,
  type CallerIdentity,
  ConfigurationError,
  IdentitySigner,
  RESIGN_AFTER_MS,
  TokenClient,
  TokenVendInvokeError,
} from "../../lib/client/index.js";
import { functionError, ok, sentEvent, T0, vendAnswer } from "./support.js";

// The client signs this consumer's identity itself (lib/client/identity-signer.ts): the Lambda
// invoke is mocked (moto serves no Lambda invoke without Docker); the signing is AWS's real
// SigV4 signer. The broker side of the same requests runs against moto in test/auth/.

const CREDENTIALS: AwsCredentials = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "not-a-real-key",
};
let nowMs = T0;
let credentialCalls = 0;
const credentials = async (): Promise<AwsCredentials> => {
  credentialCalls += 1;
  return CREDENTIALS;
};

function signer(provider: () => Promise<AwsCredentials> = credentials): IdentitySigner {
  return new IdentitySigner({
    serverId: "broker-a",
    region: "eu-west-1",
    credentials: provider,
    now: () => nowMs,
  });
}

function signedHeaders(identity: CallerIdentity): string[] {
  return /SignedHeaders=([^,]+)/.exec(identity.headers.authorization ?? "")?.[1]?.split(";") ?? [];
}

beforeEach(() => {
  nowMs = T0;
  credentialCalls = 0;
});

describe("IdentitySigner", () => {
  it("signs GetCallerIdentity for STS in the broker's region, naming the broker in a signed header", async () => {
    const identity = await signer().identity();

    expect(identity.body).toBe(GET_CALLER_IDENTITY_BODY);
    expect(identity.headers.host).toBe("sts.eu-west-1.amazonaws.com");
    expect(identity.headers[SERVER_ID_HEADER.toLowerCase()]).toBe("broker-a");
    expect(identity.headers["x-amz-date"]).toBe("20261126T120000Z");
    expect(identity.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE\/20261126\/eu-west-1\/sts\/aws4_request, /,
    );
    expect(signedHeaders(identity)).toEqual(
      expect.arrayContaining(["host", "x-amz-date", "x-exact-broker-server-id"]),
    );
  });

  it("reuses one signature for 5 minutes, then signs again", async () => {
    const tokens = signer();

    const first = await tokens.identity();
    nowMs += RESIGN_AFTER_MS - 1;
    const reused = await tokens.identity();
    nowMs += 1;
    const renewed = await tokens.identity();

    expect(reused).toBe(first);
    expect(renewed.headers["x-amz-date"]).toBe("20261126T120500Z");
    expect(credentialCalls).toBe(2);
  });

  it("signs again before its credentials expire, even within the 5 minutes", async () => {
    const expiring = async () => ({
      ...CREDENTIALS,
      sessionToken: "session",
      expiration: new Date(T0 + 120_000),
    });
    const tokens = signer(expiring);

    const first = await tokens.identity();
    nowMs += 61_000;
    const second = await tokens.identity();

    expect(first.headers["x-amz-security-token"]).toBe("session");
    expect(second).not.toBe(first);
  });

  it("lets concurrent callers share one signing", async () => {
    const tokens = signer();

    const identities = await Promise.all([tokens.identity(), tokens.identity(), tokens.identity()]);

    expect(new Set(identities).size).toBe(1);
    expect(credentialCalls).toBe(1);
  });

  it("does not keep a failed signing: the next call tries again", async () => {
    let fail = true;
    const flaky = async () => {
      if (fail) throw new Error("no credentials yet");
      return CREDENTIALS;
    };
    const tokens = signer(flaky);

    await expect(tokens.identity()).rejects.toThrow("no credentials yet");
    fail = false;

    await expect(tokens.identity()).resolves.toMatchObject({ body: GET_CALLER_IDENTITY_BODY });
  });
});

describe("TokenClient with a server ID", () => {
  const lambda = new LambdaClient({ region: "eu-west-1" });
  const lambdaMock = mockClient(lambda);
  const FUNCTION_ARN = "arn:aws:lambda:eu-central-1:123456789012:function:TokenVend";
  beforeEach(() => {
    lambdaMock.reset();
    lambdaMock.on(InvokeCommand).resolves(ok(vendAnswer(1, 600, T0)));
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  function eventSent(call = 0): { callerIdentity?: CallerIdentity } {
    return sentEvent(lambdaMock.commandCalls(InvokeCommand)[call]?.args[0].input) as {
      callerIdentity?: CallerIdentity;
    };
  }

  it("sends its signed identity with every invoke, signed for the region of token-vend's ARN", async () => {
    vi.stubEnv("TOKEN_VEND_SERVER_ID", "broker-a");
    const tokens = new TokenClient({ lambda, now: () => nowMs, functionName: FUNCTION_ARN, credentials });

    await tokens.getAccessToken("acme");

    const identity = eventSent().callerIdentity;
    expect(identity?.headers.host).toBe("sts.eu-central-1.amazonaws.com");
    expect(identity?.headers[SERVER_ID_HEADER.toLowerCase()]).toBe("broker-a");
  });

  it("sends no identity without a server ID (a stackWide broker serves it; a perConnection one refuses)", async () => {
    const tokens = new TokenClient({ lambda, now: () => nowMs, functionName: FUNCTION_ARN, credentials });

    await tokens.getAccessToken("acme");

    expect(eventSent()).not.toHaveProperty("callerIdentity");
    expect(credentialCalls).toBe(0);
  });

  it("turns token-vend's AccessDenied into the typed error", async () => {
    lambdaMock
      .on(InvokeCommand)
      .resolves(
        functionError("AccessDenied", 'arn:aws:sts::1:assumed-role/x/s has no grant for connection "acme"'),
      );
    const tokens = new TokenClient({ lambda, functionName: FUNCTION_ARN, serverId: "broker-a", credentials });

    const error = await tokens.getAccessToken("acme").catch((e: unknown) => e as Error);

    expect(error).toBeInstanceOf(AccessDenied);
    expect(error).toMatchObject({ name: "AccessDenied", retryAfterSeconds: undefined });
  });

  it("refuses before any invoke when it cannot tell which region to sign for", async () => {
    vi.stubEnv("AWS_REGION", "");
    const tokens = new TokenClient({ lambda, functionName: "TokenVend", serverId: "broker-a", credentials });

    await expect(tokens.getAccessToken("acme")).rejects.toBeInstanceOf(ConfigurationError);
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(0);
  });

  it("reports credentials it cannot get as a retryable invoke error, without invoking", async () => {
    const missing = async (): Promise<AwsCredentials> => {
      throw Object.assign(new Error("Could not load credentials from any providers"), {
        name: "CredentialsProviderError",
      });
    };
    const tokens = new TokenClient({
      lambda,
      functionName: FUNCTION_ARN,
      serverId: "broker-a",
      credentials: missing,
    });

    const error = await tokens.getAccessToken("acme").catch((e: unknown) => e as TokenVendInvokeError);

    expect(error).toBeInstanceOf(TokenVendInvokeError);
    expect(error).toMatchObject({ awsErrorName: "CredentialsProviderError", retryAfterSeconds: 1 });
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(0);
  });
});
