import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, describe, expect, it, vi } from "vitest";
import * as client from "../../lib/client/index.js";
import { ok, sentEvent, vendAnswer } from "./support.js";

// The module-level functions build their own LambdaClient: mock the class (its prototype's send).
const lambdaMock = mockClient(LambdaClient);

afterAll(() => {
  lambdaMock.restore();
  vi.unstubAllEnvs();
});

describe("exact-token-broker/client module functions", () => {
  it("exports the documented API from the barrel", () => {
    expect(Object.keys(client).sort()).toEqual(
      [
        "AccessDenied",
        "BrokerError",
        "CACHE_SAFETY_MARGIN_SECONDS",
        "ChainBusy",
        "ConfigurationError",
        "ConnectionNotFound",
        "DEFAULT_DEADLINE_MS",
        "DEFAULT_MIN_VALIDITY_SECONDS",
        "DeadlineExceeded",
        "ExactApiError",
        "ExactBadRequest",
        "ExactForbidden",
        "ExactNotFound",
        "ExactServerError",
        "ExactUnauthorized",
        "ExactUnavailable",
        "IdentitySigner",
        "InternalError",
        "InvalidVendAnswer",
        "NoDivision",
        "RESIGN_AFTER_MS",
        "ReauthRequired",
        "Throttled",
        "TokenClient",
        "TokenVendInvokeError",
        "UnknownBrokerError",
        "UserBlocked",
        "ValidationError",
        "exactFetch",
        "exactPages",
        "getAccessToken",
        "invalidate",
      ].sort(),
    );
  });

  it("share one process-wide cache, use TOKEN_VEND_FUNCTION_NAME, and invalidate it", async () => {
    vi.stubEnv("TOKEN_VEND_FUNCTION_NAME", "arn:aws:lambda:eu-west-1:123456789012:function:TokenVend");
    const now = Date.now();
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(ok(vendAnswer(1, 600, now)))
      .resolvesOnce(ok(vendAnswer(2, 600, now)));

    const first = await client.getAccessToken("acme");
    const again = await client.getAccessToken("acme", { minValiditySeconds: 10 });
    client.invalidate("acme");
    const fresh = await client.getAccessToken("acme");

    expect([first.generation, again.generation, fresh.generation]).toEqual([1, 1, 2]);
    const calls = lambdaMock.commandCalls(InvokeCommand);
    expect(calls).toHaveLength(2);
    expect(calls[0]?.args[0].input.FunctionName).toBe(
      "arn:aws:lambda:eu-west-1:123456789012:function:TokenVend",
    );
    expect(sentEvent(calls[0]?.args[0].input)).toStrictEqual({
      connectionId: "acme",
      minValiditySeconds: 30,
    });
  });
});

describe("the built package", () => {
  it("exports the client as exact-token-broker/client", async () => {
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const { stdout } = await promisify(execFile)(process.execPath, [
      "--input-type=module",
      "-e",
      'const m = await import("exact-token-broker/client"); console.log(typeof m.getAccessToken, typeof m.invalidate, typeof m.TokenClient);',
    ]);
    expect(stdout.trim()).toBe("function function function");
  });
});
