import { App, Duration } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../lib/config.js";
import { BrokerStack, type BrokerStackProps } from "../../lib/infra/broker-stack.js";
import { FUNCTION_NAMES } from "../../lib/infra/bundling.js";
import { EngineSettings, functionTimeouts, timingEnvironment } from "../../lib/infra/function-settings.js";

/**
 * The stack without bundling (only asset hashes change), so each synth here takes a moment:
 * broker-stack.test.ts synthesizes with real bundles.
 */
function synth(props: BrokerStackProps = {}): BrokerStack {
  return new BrokerStack(new App({ context: { "aws:cdk:bundling-stacks": [] } }), "Timing", props);
}

/** A function's Timeout and environment variables in the template, by its BROKER_FUNCTION. */
function deployed(template: Template, name: string): { timeout: number; env: Record<string, unknown> } {
  const found = Object.values(
    template.findResources("AWS::Lambda::Function", {
      Properties: { Environment: { Variables: Match.objectLike({ BROKER_FUNCTION: name }) } },
    }),
  );
  expect(found, name).toHaveLength(1);
  const props = found[0]?.Properties as {
    Timeout: number;
    Environment: { Variables: Record<string, unknown> };
  };
  return { timeout: props.Timeout, env: props.Environment.Variables };
}

describe("function timing in the stack", () => {
  let template: Template;
  beforeAll(() => {
    template = Template.fromStack(synth());
  });

  it.each(FUNCTION_NAMES)("%s carries its own name and its Timeout as FUNCTION_TIMEOUT_SECONDS", (name) => {
    const timeout = functionTimeouts(EngineSettings)[name].toSeconds();
    template.hasResourceProperties("AWS::Lambda::Function", {
      Timeout: timeout,
      Environment: {
        Variables: Match.objectLike({
          POWERTOOLS_SERVICE_NAME: name,
          BROKER_FUNCTION: name,
          FUNCTION_TIMEOUT_SECONDS: String(timeout),
        }),
      },
    });
  });

  it.each(FUNCTION_NAMES)("%s's timing environment is one its engine accepts at start", (name) => {
    const { timeout, env } = deployed(template, name);
    const config = loadConfig({ ...(env as Record<string, string>), TABLE_NAME: "chains" });
    expect(config.functionName).toBe(name);
    expect(config.functionTimeoutMs).toBe(timeout * 1000);
    expect(config).toMatchObject({ leaseMs: 20_000, loginLeaseMs: 120_000, httpTimeoutMs: 8_000 });
  });

  it("deploys overridden engine settings, with every timeout following them", () => {
    const overridden = Template.fromStack(
      synth({ engineSettings: { leaseSeconds: 30, loginLeaseSeconds: 200 } }),
    );
    const seen = Object.fromEntries(
      FUNCTION_NAMES.map((name) => {
        const { timeout, env } = deployed(overridden, name);
        expect(env, name).toMatchObject({
          LEASE_SECONDS: "30",
          LOGIN_LEASE_SECONDS: "200",
          HTTP_TIMEOUT_MS: "8000",
          FUNCTION_TIMEOUT_SECONDS: String(timeout),
        });
        return [name, timeout];
      }),
    );
    // refresh: the dispatch run's 60 s (no lease); refresh-worker: 30 s window wait + lease + 5 s.
    expect(seen).toEqual({
      "token-vend": 35,
      refresh: 60,
      "refresh-worker": 65,
      "fallback-login": 205,
      connect: 35,
    });
  });

  it("keeps the refresh queue's visibility timeout at six times the refresh-worker's timeout", () => {
    const overridden = Template.fromStack(synth({ engineSettings: { leaseSeconds: 30 } }));
    expect(deployed(overridden, "refresh-worker").timeout).toBe(65);
    overridden.hasResourceProperties("AWS::SQS::Queue", { VisibilityTimeout: 6 * 65 });
  });

  it("raises the refresh dispatcher's timeout with a lease too long for its 60 s", () => {
    // The engine checks the leased rule at start for refresh too (without a queue it does the work).
    const overridden = Template.fromStack(synth({ engineSettings: { leaseSeconds: 58 } }));
    expect(deployed(overridden, "refresh").timeout).toBe(63);
    expect(deployed(overridden, "refresh-worker").timeout).toBe(93);
  });

  it.each([
    {
      broken: "a lease shorter than one token call, its write and the clock skew",
      engineSettings: { leaseSeconds: 12 },
      reason: /LEASE_SECONDS \(12\) must be at least HTTP_TIMEOUT_MS \(8000\) .* raise LEASE_SECONDS to 13/,
    },
    {
      broken: "a login lease too short for a login",
      engineSettings: { loginLeaseSeconds: 65 },
      reason:
        /LOGIN_LEASE_SECONDS \(65\) .* another invocation could start a second login; raise LOGIN_LEASE_SECONDS to 66/,
    },
    {
      broken: "an HTTP timeout the login lease cannot hold twice",
      engineSettings: { leaseSeconds: 60, httpTimeoutMs: 36_000 },
      reason: /LOGIN_LEASE_SECONDS \(120\) must be at least .*HTTP_TIMEOUT_MS \(36000\)/,
    },
  ])("fails the synth, naming the function and the reason, for $broken", ({ engineSettings, reason }) => {
    expect(() => synth({ engineSettings })).toThrow(
      /exact-token-broker's \S+ function would refuse to start/,
    );
    expect(() => synth({ engineSettings })).toThrow(reason);
  });
});

describe("timingEnvironment", () => {
  it.each([
    [
      "token-vend",
      24,
      /FUNCTION_TIMEOUT_SECONDS \(24\) of token-vend .*raise the function's timeout to 25 s/,
    ],
    ["refresh", 24, /FUNCTION_TIMEOUT_SECONDS \(24\) of refresh .*raise the function's timeout to 25 s/],
    // The worker holds an ordinary lease for each chain's token call: the same rule as token-vend's.
    [
      "refresh-worker",
      24,
      /FUNCTION_TIMEOUT_SECONDS \(24\) of refresh-worker must be at least LEASE_SECONDS \(20\) .*losing a token call's answer; raise the function's timeout to 25 s/,
    ],
    ["connect", 24, /FUNCTION_TIMEOUT_SECONDS \(24\) of connect .*raise the function's timeout to 25 s/],
    [
      "fallback-login",
      124,
      /FUNCTION_TIMEOUT_SECONDS \(124\) of fallback-login .*raise the function's timeout to 125 s/,
    ],
  ] as const)(
    "refuses %s with a timeout of %i s, 1 s short of its lease and margin",
    (name, seconds, reason) => {
      expect(() => timingEnvironment(name, EngineSettings, Duration.seconds(seconds + 1))).not.toThrow();
      expect(() => timingEnvironment(name, EngineSettings, Duration.seconds(seconds))).toThrow(
        new RegExp(`exact-token-broker's ${name} function would refuse to start`),
      );
      expect(() => timingEnvironment(name, EngineSettings, Duration.seconds(seconds))).toThrow(reason);
    },
  );

  it("sets the timing variables the engine reads, from the settings and the timeout given", () => {
    expect(timingEnvironment("connect", EngineSettings, Duration.seconds(25))).toEqual({
      LEASE_SECONDS: "20",
      HTTP_TIMEOUT_MS: "8000",
      LOGIN_LEASE_SECONDS: "120",
      FUNCTION_TIMEOUT_SECONDS: "25",
      BROKER_FUNCTION: "connect",
      HISTORY_DAYS: "90",
    });
  });
});
