import {
  InvokeCommand,
  type InvokeCommandOutput,
  LambdaClient,
  LambdaServiceException,
  ResourceNotFoundException,
  ServiceException,
  TooManyRequestsException,
} from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type AccessToken,
  BrokerError,
  CACHE_SAFETY_MARGIN_SECONDS,
  ChainBusy,
  ConfigurationError,
  ConnectionNotFound,
  ExactUnavailable,
  InternalError,
  InvalidVendAnswer,
  ReauthRequired,
  Throttled,
  TokenClient,
  TokenVendInvokeError,
  UnknownBrokerError,
  ValidationError,
} from "../../lib/client/index.js";
import { toEdgeError } from "../../lib/handlers/error-boundary.js";
import { CONNECTION_ID_PATTERN } from "../../lib/handlers/events.js";
import { deferred, functionError, ok, sentEvent, T0, tokenFor, vendAnswer } from "./support.js";

const FUNCTION = "ExactTokenBroker-TokenVend";

let nowMs = T0;
const lambda = new LambdaClient({ region: "eu-west-1" });
const lambdaMock = mockClient(lambda);
let client: TokenClient;

function invokes() {
  return lambdaMock.commandCalls(InvokeCommand);
}

/** How the Node runtime reports an error a handler threw after token-vend's error boundary. */
function brokerFailure(thrown: Error): InvokeCommandOutput {
  const edge = toEdgeError(thrown);
  return functionError(edge.name, edge.message);
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome, "expected the call to fail").toBeInstanceOf(Error);
  return outcome as Error;
}

beforeEach(() => {
  nowMs = T0;
  lambdaMock.reset();
  vi.unstubAllEnvs();
  client = new TokenClient({ lambda, now: () => nowMs, functionName: FUNCTION });
});

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("TokenClient: answers and cache", () => {
  it("invokes token-vend synchronously and returns the parsed answer", async () => {
    const answer = vendAnswer(7, 600, T0);
    lambdaMock.on(InvokeCommand).resolves(ok({ ...answer, extra: "dropped" }));

    const token = await client.getAccessToken("acme");

    expect(token).toStrictEqual(answer);
    expect(Object.isFrozen(token)).toBe(true);
    expect(invokes()).toHaveLength(1);
    expect(invokes()[0]?.args[0].input).toMatchObject({
      FunctionName: FUNCTION,
      InvocationType: "RequestResponse",
    });
  });

  it("sends exactly {connectionId, minValiditySeconds}, with 30 as the default", async () => {
    lambdaMock.on(InvokeCommand).resolves(ok(vendAnswer(1, 600, T0)));

    await client.getAccessToken("acme");
    await client.getAccessToken("other.conn_2", { minValiditySeconds: 0 });

    const events = invokes().map((call) => sentEvent(call.args[0].input));
    expect(events).toStrictEqual([
      { connectionId: "acme", minValiditySeconds: 30 },
      { connectionId: "other.conn_2", minValiditySeconds: 0 },
    ]);
  });

  it("answers a second call from memory without invoking", async () => {
    lambdaMock.on(InvokeCommand).resolves(ok(vendAnswer(1, 600, T0)));

    const first = await client.getAccessToken("acme");
    nowMs += 60_000;
    const second = await client.getAccessToken("acme");

    expect(second).toBe(first);
    expect(invokes()).toHaveLength(1);
  });

  it("keeps connections apart", async () => {
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(ok(vendAnswer(1, 600, T0)))
      .resolvesOnce(ok(vendAnswer(9, 600, T0)));

    const a = await client.getAccessToken("acme");
    const b = await client.getAccessToken("globex");

    expect(a.generation).toBe(1);
    expect(b.generation).toBe(9);
    expect(invokes()).toHaveLength(2);
  });

  it(`reuses a cached token while it has minValiditySeconds + ${CACHE_SAFETY_MARGIN_SECONDS} s left, not 1 ms less`, async () => {
    const validFor = 600;
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(ok(vendAnswer(1, validFor, T0)))
      .resolvesOnce(ok(vendAnswer(2, 600, T0 + validFor * 1000)));
    await client.getAccessToken("acme");

    // 35 s left: exactly 30 + 5 → still from memory.
    nowMs = T0 + (validFor - 30 - CACHE_SAFETY_MARGIN_SECONDS) * 1000;
    expect((await client.getAccessToken("acme")).generation).toBe(1);
    expect(invokes()).toHaveLength(1);

    // 1 ms later it is too close to expiry → token-vend again, and the new answer is cached.
    nowMs += 1;
    expect((await client.getAccessToken("acme")).generation).toBe(2);
    expect((await client.getAccessToken("acme")).generation).toBe(2);
    expect(invokes()).toHaveLength(2);
  });

  it("measures the cache against each caller's own minValiditySeconds", async () => {
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(ok(vendAnswer(1, 20, T0)))
      .resolvesOnce(ok(vendAnswer(2, 600, T0)));

    // A fresh answer is returned as token-vend gave it, even with little validity left.
    expect((await client.getAccessToken("acme", { minValiditySeconds: 0 })).generation).toBe(1);
    // 20 s left ≥ 0 + 5: from memory.
    expect((await client.getAccessToken("acme", { minValiditySeconds: 0 })).generation).toBe(1);
    expect(invokes()).toHaveLength(1);
    // 20 s left ≥ 15 + 5: from memory; 16 + 5 > 20: token-vend again.
    expect((await client.getAccessToken("acme", { minValiditySeconds: 15 })).generation).toBe(1);
    expect((await client.getAccessToken("acme", { minValiditySeconds: 16 })).generation).toBe(2);
    expect(invokes()).toHaveLength(2);
    expect(sentEvent(invokes()[1]?.args[0].input)).toStrictEqual({
      connectionId: "acme",
      minValiditySeconds: 16,
    });
  });

  it("caches per token-vend function, so two brokers' tokens never mix", async () => {
    lambdaMock
      .on(InvokeCommand, { FunctionName: FUNCTION })
      .resolves(ok(vendAnswer(1, 600, T0)))
      .on(InvokeCommand, { FunctionName: "OtherBroker-TokenVend" })
      .resolves(ok(vendAnswer(50, 600, T0)));

    expect((await client.getAccessToken("acme")).generation).toBe(1);
    expect((await client.getAccessToken("acme", { functionName: "OtherBroker-TokenVend" })).generation).toBe(
      50,
    );
    expect((await client.getAccessToken("acme")).generation).toBe(1);
    expect(invokes()).toHaveLength(2);
  });

  it.each([
    ["not JSON", "<html>"],
    ["not an object", "[]"],
    ["no accessToken", { ...vendAnswer(1, 600, T0), accessToken: undefined }],
    ["a wrong tokenType", { ...vendAnswer(1, 600, T0), tokenType: "MAC" }],
    ["an unparseable expiresAt", { ...vendAnswer(1, 600, T0), expiresAt: "soon" }],
    ["a fractional generation", { ...vendAnswer(1, 600, T0), generation: 1.5 }],
    ["no baseUrl", { ...vendAnswer(1, 600, T0), baseUrl: "" }],
    ["no division", { ...vendAnswer(1, 600, T0), division: undefined }],
  ])("refuses an answer with %s, without caching it", async (_name, body) => {
    lambdaMock.on(InvokeCommand).resolves(ok(body));

    const error = await failure(client.getAccessToken("acme"));
    expect(error).toBeInstanceOf(InvalidVendAnswer);
    expect(error.name).toBe("InvalidVendAnswer");
    await failure(client.getAccessToken("acme"));
    expect(invokes()).toHaveLength(2);
  });

  it("accepts division null (a connection without a current division)", async () => {
    lambdaMock.on(InvokeCommand).resolves(ok(vendAnswer(1, 600, T0, { division: null })));
    expect((await client.getAccessToken("acme")).division).toBeNull();
  });
});

describe("TokenClient: concurrent calls", () => {
  it("share one invoke for one connection, and the answer is then cached", async () => {
    const pending = deferred<InvokeCommandOutput>();
    lambdaMock.on(InvokeCommand).callsFake(() => pending.promise);

    const calls = Array.from({ length: 10 }, () => client.getAccessToken("acme"));
    await vi.waitFor(() => expect(invokes()).toHaveLength(1));
    pending.resolve(ok(vendAnswer(3, 600, T0)));
    const tokens = await Promise.all(calls);

    expect(new Set(tokens.map((t) => t.accessToken))).toEqual(new Set([tokenFor(3)]));
    await client.getAccessToken("acme");
    expect(invokes()).toHaveLength(1);
  });

  it("share a failure too, and the next call tries again", async () => {
    const pending = deferred<InvokeCommandOutput>();
    lambdaMock
      .on(InvokeCommand)
      .callsFakeOnce(() => pending.promise)
      .resolves(ok(vendAnswer(4, 600, T0)));

    const calls = [client.getAccessToken("acme"), client.getAccessToken("acme")];
    pending.resolve(brokerFailure(new ChainBusy("chain acme is busy", { retryAfterSeconds: 2 })));
    const errors = await Promise.all(calls.map(failure));

    expect(errors.every((e) => e instanceof ChainBusy)).toBe(true);
    expect(invokes()).toHaveLength(1);
    expect((await client.getAccessToken("acme")).generation).toBe(4);
    expect(invokes()).toHaveLength(2);
  });

  it("a joiner needing less validity than the shared invoke asked for takes its fresh answer", async () => {
    const pending = deferred<InvokeCommandOutput>();
    lambdaMock.on(InvokeCommand).callsFake(() => pending.promise);

    const first = client.getAccessToken("acme", { minValiditySeconds: 30 });
    const second = client.getAccessToken("acme", { minValiditySeconds: 30 });
    // token-vend guaranteed 30 s; 32 s left is below the cache's 30 + 5 but fine for a fresh answer.
    pending.resolve(ok(vendAnswer(5, 32, T0)));

    expect((await first).generation).toBe(5);
    expect((await second).generation).toBe(5);
    expect(invokes()).toHaveLength(1);
  });

  it("a joiner needing more validity than the shared answer has invokes again", async () => {
    const pending = deferred<InvokeCommandOutput>();
    lambdaMock
      .on(InvokeCommand)
      .callsFakeOnce(() => pending.promise)
      .resolves(ok(vendAnswer(6, 600, T0)));

    const modest = client.getAccessToken("acme", { minValiditySeconds: 0 });
    const demanding = client.getAccessToken("acme", { minValiditySeconds: 30 });
    pending.resolve(ok(vendAnswer(5, 20, T0)));

    expect((await modest).generation).toBe(5);
    expect((await demanding).generation).toBe(6);
    expect(invokes().map((call) => sentEvent(call.args[0].input))).toStrictEqual([
      { connectionId: "acme", minValiditySeconds: 0 },
      { connectionId: "acme", minValiditySeconds: 30 },
    ]);
  });

  it("a joiner needing more validity takes the shared answer when it has enough", async () => {
    const pending = deferred<InvokeCommandOutput>();
    lambdaMock.on(InvokeCommand).callsFake(() => pending.promise);

    const modest = client.getAccessToken("acme", { minValiditySeconds: 0 });
    const demanding = client.getAccessToken("acme", { minValiditySeconds: 30 });
    pending.resolve(ok(vendAnswer(5, 600, T0)));

    expect((await modest).generation).toBe(5);
    expect((await demanding).generation).toBe(5);
    expect(invokes()).toHaveLength(1);
  });

  it("several demanding joiners share one second invoke", async () => {
    const pending = deferred<InvokeCommandOutput>();
    lambdaMock
      .on(InvokeCommand)
      .callsFakeOnce(() => pending.promise)
      .resolves(ok(vendAnswer(6, 600, T0)));

    const modest = client.getAccessToken("acme", { minValiditySeconds: 0 });
    const demanding = [1, 2, 3].map(() => client.getAccessToken("acme", { minValiditySeconds: 30 }));
    pending.resolve(ok(vendAnswer(5, 20, T0)));

    expect((await modest).generation).toBe(5);
    expect((await Promise.all(demanding)).map((t) => t.generation)).toEqual([6, 6, 6]);
    expect(invokes()).toHaveLength(2);
  });

  it("do not share across connections", async () => {
    lambdaMock.on(InvokeCommand).callsFake(async (input: { Payload: string }) => {
      const event = JSON.parse(input.Payload) as { connectionId: string };
      return ok(vendAnswer(event.connectionId === "acme" ? 1 : 2, 600, T0));
    });

    const [a, b] = await Promise.all([client.getAccessToken("acme"), client.getAccessToken("globex")]);

    expect([a.generation, b.generation]).toEqual([1, 2]);
    expect(invokes()).toHaveLength(2);
  });
});

describe("TokenClient: invalidate", () => {
  it("drops the cached token, so the next call invokes again", async () => {
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(ok(vendAnswer(1, 600, T0)))
      .resolvesOnce(ok(vendAnswer(2, 600, T0)));
    await client.getAccessToken("acme");

    client.invalidate("acme");

    expect((await client.getAccessToken("acme")).generation).toBe(2);
    expect(invokes()).toHaveLength(2);
  });

  it("leaves other connections cached", async () => {
    lambdaMock.on(InvokeCommand).resolves(ok(vendAnswer(1, 600, T0)));
    await client.getAccessToken("acme");
    await client.getAccessToken("globex");

    client.invalidate("acme");
    await client.getAccessToken("globex");

    expect(invokes()).toHaveLength(2);
  });

  it("keeps an invoke already in flight from caching its (possibly rejected) token", async () => {
    const pending = deferred<InvokeCommandOutput>();
    lambdaMock
      .on(InvokeCommand)
      .callsFakeOnce(() => pending.promise)
      .resolves(ok(vendAnswer(2, 600, T0)));

    const inFlight = client.getAccessToken("acme");
    await vi.waitFor(() => expect(invokes()).toHaveLength(1));
    client.invalidate("acme");
    pending.resolve(ok(vendAnswer(1, 600, T0)));

    expect((await inFlight).generation).toBe(1);
    expect((await client.getAccessToken("acme")).generation).toBe(2);
    expect(invokes()).toHaveLength(2);
  });
});

describe("TokenClient: token-vend's errors", () => {
  it.each([
    [
      "ChainBusy",
      () => new ChainBusy("chain acme is busy; try again", { retryAfterSeconds: 3 }),
      ChainBusy,
      3,
    ],
    [
      "ExactUnavailable",
      () => new ExactUnavailable("Exact answered 503", { retryAfterSeconds: 12.2 }),
      ExactUnavailable,
      13,
    ],
    ["Throttled", () => new Throttled("error budget spent", { retryAfterSeconds: 600 }), Throttled, 600],
    ["InternalError", () => new Error("something only the logs may know"), InternalError, 1],
    [
      "ValidationError",
      () => new ValidationError("invalid event: minValiditySeconds: too big"),
      ValidationError,
      undefined,
    ],
    ["ConnectionNotFound", () => new ConnectionNotFound("no connection acme"), ConnectionNotFound, undefined],
    [
      "ReauthRequired",
      () => new ReauthRequired("chain acme is broken; run exact-broker connection seed"),
      ReauthRequired,
      undefined,
    ],
  ] as const)("maps %s to its class", async (errorType, thrown, errorClass, retryAfterSeconds) => {
    const cause = thrown();
    lambdaMock.on(InvokeCommand).resolves(brokerFailure(cause));

    const error = await failure(client.getAccessToken("acme"));

    expect(error).toBeInstanceOf(errorClass);
    expect(error).toBeInstanceOf(BrokerError);
    expect(error.name).toBe(errorType);
    const broker = error as BrokerError;
    expect(broker.retryAfterSeconds).toBe(retryAfterSeconds);
    expect(broker.retryable).toBe(retryAfterSeconds !== undefined);
    expect(broker.message).not.toMatch(/retryAfterSeconds/);
    if (cause instanceof BrokerError) expect(broker.message).toBe(cause.message);
    else expect(broker.message).not.toContain("only the logs");
  });

  it.each([
    ["Sandbox.Timedout", "RequestId: abc Error: Task timed out after 30.00 seconds", undefined],
    ["Runtime.ImportModuleError", "Error: Cannot find module 'x'", undefined],
    ["LeaseLost", "a newer broker's error (retryAfterSeconds=7)", 7],
    ["constructor", "an errorType that is an Object.prototype key", undefined],
  ])("maps the unknown errorType %s to UnknownBrokerError", async (errorType, message, retry) => {
    lambdaMock.on(InvokeCommand).resolves(functionError(errorType, message));

    const error = await failure(client.getAccessToken("acme"));

    expect(error).toBeInstanceOf(UnknownBrokerError);
    expect(error).toBeInstanceOf(BrokerError);
    const unknown = error as UnknownBrokerError;
    expect(unknown.name).toBe("UnknownBrokerError");
    expect(unknown.errorType).toBe(errorType);
    expect(unknown.message).toContain(errorType);
    expect(unknown.message).toContain(message.replace(/ \(retryAfterSeconds=\d+\)$/, ""));
    expect(unknown.retryAfterSeconds).toBe(retry);
  });

  it("maps a function error without the runtime's JSON to UnknownBrokerError named after FunctionError", async () => {
    lambdaMock.on(InvokeCommand).resolves({ ...ok("Task timed out"), FunctionError: "Unhandled" });

    const error = await failure(client.getAccessToken("acme"));

    expect(error).toBeInstanceOf(UnknownBrokerError);
    expect((error as UnknownBrokerError).errorType).toBe("Unhandled");
  });

  it("never caches a failure and never drops a cached token because of one", async () => {
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(ok(vendAnswer(1, 600, T0)))
      .resolvesOnce(brokerFailure(new ChainBusy("busy", { retryAfterSeconds: 1 })))
      .resolves(ok(vendAnswer(2, 600, T0)));
    await client.getAccessToken("acme", { minValiditySeconds: 0 });

    // Needs more validity than cached (600 s < 600 + 5) → invoke → ChainBusy.
    const error = await failure(client.getAccessToken("acme", { minValiditySeconds: 600 }));
    expect(error).toBeInstanceOf(ChainBusy);
    // The cached token still serves a modest caller without an invoke.
    expect((await client.getAccessToken("acme", { minValiditySeconds: 0 })).generation).toBe(1);
    expect(invokes()).toHaveLength(2);
  });
});

describe("TokenClient: Lambda service errors", () => {
  it("turns throttling into a retryable TokenVendInvokeError with the SDK error as cause", async () => {
    const sdkError = new TooManyRequestsException({
      message: "Rate Exceeded.",
      $metadata: { httpStatusCode: 429 },
      retryAfterSeconds: "4",
      Reason: "ConcurrentInvocationLimitExceeded",
    });
    lambdaMock.on(InvokeCommand).rejects(sdkError);

    const error = await failure(client.getAccessToken("acme"));

    expect(error).toBeInstanceOf(TokenVendInvokeError);
    expect(error).toBeInstanceOf(BrokerError);
    expect(error.cause).toBe(sdkError);
    expect(error).toMatchObject({
      name: "TokenVendInvokeError",
      awsErrorName: "TooManyRequestsException",
      retryAfterSeconds: 4,
      message: expect.stringMatching(
        /could not invoke token-vend \(ExactTokenBroker-TokenVend\): .*throttled/,
      ),
    });
  });

  it("defaults a throttle without Retry-After to 1 s", async () => {
    lambdaMock
      .on(InvokeCommand)
      .rejects(
        new TooManyRequestsException({ message: "Rate Exceeded.", $metadata: { httpStatusCode: 429 } }),
      );
    expect(await failure(client.getAccessToken("acme"))).toMatchObject({ retryAfterSeconds: 1 });
  });

  it("says how to fix a function that does not exist, not retryable", async () => {
    const sdkError = new ResourceNotFoundException({
      message:
        "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:ExactTokenBroker-TokenVend",
      $metadata: { httpStatusCode: 404 },
    });
    lambdaMock.on(InvokeCommand).rejects(sdkError);

    const error = await failure(client.getAccessToken("acme"));

    expect(error).toBeInstanceOf(TokenVendInvokeError);
    expect(error.cause).toBe(sdkError);
    expect(error.message).toContain("TOKEN_VEND_FUNCTION_NAME");
    expect((error as TokenVendInvokeError).retryable).toBe(false);
  });

  it("says how to fix a role that may not invoke, not retryable", async () => {
    const sdkError = new LambdaServiceException({
      name: "AccessDeniedException",
      $fault: "client",
      message:
        "User: arn:aws:sts::123456789012:assumed-role/consumer/fn is not authorized to perform: lambda:InvokeFunction",
      $metadata: { httpStatusCode: 403 },
    });
    lambdaMock.on(InvokeCommand).rejects(sdkError);

    const error = await failure(client.getAccessToken("acme"));

    expect(error).toBeInstanceOf(TokenVendInvokeError);
    expect(error.cause).toBe(sdkError);
    expect(error.message).toContain("grantVend");
    expect(error.message).toContain("not authorized");
    expect((error as TokenVendInvokeError).retryAfterSeconds).toBeUndefined();
  });

  it("marks a Lambda 5xx retryable", async () => {
    lambdaMock
      .on(InvokeCommand)
      .rejects(new ServiceException({ message: "internal", $metadata: { httpStatusCode: 500 } }));

    const error = await failure(client.getAccessToken("acme"));

    expect(error).toBeInstanceOf(TokenVendInvokeError);
    expect(error).toMatchObject({ awsErrorName: "ServiceException", retryAfterSeconds: 1 });
  });

  it("wraps a failure that never reached Lambda (network, credentials)", async () => {
    const networkError = Object.assign(new Error("getaddrinfo ENOTFOUND lambda.eu-west-1.amazonaws.com"), {
      code: "ENOTFOUND",
    });
    lambdaMock.on(InvokeCommand).rejects(networkError);

    const error = await failure(client.getAccessToken("acme"));

    expect(error).toBeInstanceOf(TokenVendInvokeError);
    expect(error.cause).toBe(networkError);
    expect(error.message).toContain("ENOTFOUND");
  });
});

describe("TokenClient: refusals before any invoke", () => {
  it.each([
    "acme",
    "a",
    "A.b_c-9",
    "x".repeat(64),
    "x".repeat(65),
    "",
    "../etc",
    "-lead",
    ".hidden",
    "has space",
    "ümlaut",
  ])("judges connectionId %j as token-vend does", async (connectionId) => {
    lambdaMock.on(InvokeCommand).resolves(ok(vendAnswer(1, 600, T0)));
    const outcome = await client.getAccessToken(connectionId).then(
      () => "ok",
      (error: unknown) => error,
    );
    if (CONNECTION_ID_PATTERN.test(connectionId)) {
      expect(outcome).toBe("ok");
      expect(invokes()).toHaveLength(1);
    } else {
      expect(outcome).toBeInstanceOf(ValidationError);
      expect(invokes()).toHaveLength(0);
    }
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])("refuses minValiditySeconds %s", async (min) => {
    const error = await failure(client.getAccessToken("acme", { minValiditySeconds: min }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(invokes()).toHaveLength(0);
  });

  it("refuses to guess the function: ConfigurationError without option or env", async () => {
    vi.stubEnv("TOKEN_VEND_FUNCTION_NAME", "");
    const unnamed = new TokenClient({ lambda, now: () => nowMs });

    const error = await failure(unnamed.getAccessToken("acme"));

    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toContain("TOKEN_VEND_FUNCTION_NAME");
    expect(invokes()).toHaveLength(0);
  });

  it("takes the function from the call, then the client, then TOKEN_VEND_FUNCTION_NAME (read per call)", async () => {
    lambdaMock.on(InvokeCommand).resolves(ok(vendAnswer(1, 600, T0)));
    const unnamed = new TokenClient({ lambda, now: () => nowMs });

    vi.stubEnv("TOKEN_VEND_FUNCTION_NAME", "FromEnv");
    await unnamed.getAccessToken("acme");
    await unnamed.getAccessToken("acme", { functionName: "FromCall" });
    await client.getAccessToken("acme");

    expect(invokes().map((call) => call.args[0].input.FunctionName)).toEqual([
      "FromEnv",
      "FromCall",
      FUNCTION,
    ]);
  });
});

describe("TokenClient: no token in any error", () => {
  /** Everything a log line could print of an error: message, stack, own fields, the cause's too. */
  function printable(error: unknown): string {
    if (!(error instanceof Error)) return String(error);
    const own = Object.fromEntries(Object.entries(error).filter(([key]) => key !== "cause"));
    return [String(error), error.stack ?? "", JSON.stringify(own), printable(error.cause ?? "")].join("\n");
  }

  it("keeps cached and answered tokens out of every failure", async () => {
    const scenarios: Array<[string, () => void]> = [
      [
        "ChainBusy",
        () =>
          lambdaMock
            .on(InvokeCommand)
            .resolves(brokerFailure(new ChainBusy("busy", { retryAfterSeconds: 1 }))),
      ],
      [
        "ReauthRequired",
        () => lambdaMock.on(InvokeCommand).resolves(brokerFailure(new ReauthRequired("log in"))),
      ],
      ["InternalError", () => lambdaMock.on(InvokeCommand).resolves(brokerFailure(new Error(tokenFor(99))))],
      [
        "unknown",
        () => lambdaMock.on(InvokeCommand).resolves(functionError("Sandbox.Timedout", "timed out")),
      ],
      [
        "answer with a wrong tokenType",
        () =>
          lambdaMock
            .on(InvokeCommand)
            .resolves(ok(vendAnswer(99, 600, T0, { tokenType: "MAC" as "Bearer" }))),
      ],
      [
        "answer with a bad expiresAt",
        () => lambdaMock.on(InvokeCommand).resolves(ok(vendAnswer(99, 600, T0, { expiresAt: "never" }))),
      ],
      [
        "throttled",
        () =>
          lambdaMock
            .on(InvokeCommand)
            .rejects(new TooManyRequestsException({ message: "Rate Exceeded.", $metadata: {} })),
      ],
      ["network", () => lambdaMock.on(InvokeCommand).rejects(new Error("socket hang up"))],
    ];

    lambdaMock.on(InvokeCommand).resolves(ok(vendAnswer(1, 20, T0)));
    const cached: AccessToken = await client.getAccessToken("acme", { minValiditySeconds: 0 });
    expect(cached.accessToken).toBe(tokenFor(1));

    for (const [name, arrange] of scenarios) {
      lambdaMock.reset();
      arrange();
      // 20 s left < 30 + 5: every call below invokes.
      const error = await failure(client.getAccessToken("acme"));
      expect(error, name).toBeInstanceOf(BrokerError);
      const text = printable(error);
      expect(text, name).not.toContain(tokenFor(1));
      expect(text, name).not.toContain(tokenFor(99));
      expect(text, name).not.toMatch(/client-test-token/);
    }
  });
});
