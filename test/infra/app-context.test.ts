import { readFileSync } from "node:fs";
import { App, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { loadAuthorizationSettings, type VendAuthorization } from "../../lib/auth/authorization-settings.js";
import { createBrokerApp } from "../../lib/infra/broker-app.js";
import { ExactTokenBroker } from "../../lib/infra/exact-token-broker.js";

// From the issue-10 review: `-c vendAuthorization=stackwide` (a typo likely on the upgrade path)
// used to synthesize, and every token-vend container then failed its init. Each setting of the
// bundled app is now checked at synth.

const ENV = { account: "123456789012", region: "eu-west-1" };
const CDK_CONTEXT = (JSON.parse(readFileSync("cdk.json", "utf8")) as { context: Record<string, unknown> })
  .context;

function synthWith(context: Record<string, unknown>): Template {
  const { stack } = createBrokerApp({
    app: { context: { ...CDK_CONTEXT, ...context, "aws:cdk:bundling-stacks": [] } },
    stack: { env: ENV },
  });
  return Template.fromStack(stack);
}

function tokenVendEnvironment(template: Template): Record<string, unknown> {
  const functions = template.findResources("AWS::Lambda::Function") as Record<
    string,
    { Properties: { Environment?: { Variables?: Record<string, unknown> } } }
  >;
  const env = Object.values(functions)
    .map((fn) => fn.Properties.Environment?.Variables ?? {})
    .find((vars) => "VEND_AUTHORIZATION" in vars);
  if (!env) throw new Error("no function has VEND_AUTHORIZATION");
  return env;
}

describe("the bundled app's -c settings", () => {
  it("refuses a vendAuthorization token-vend would refuse at start, naming the values it accepts", () => {
    expect(() => loadAuthorizationSettings({ VEND_AUTHORIZATION: "stackwide" })).toThrow(
      /VEND_AUTHORIZATION/,
    );
    expect(() => synthWith({ vendAuthorization: "stackwide" })).toThrow(
      '-c vendAuthorization must be one of perConnection, stackWide, got "stackwide"',
    );
  });

  it("passes a valid vendAuthorization to token-vend", () => {
    expect(tokenVendEnvironment(synthWith({ vendAuthorization: "stackWide" })).VEND_AUTHORIZATION).toBe(
      "stackWide",
    );
  }, 120_000);

  it("seals unpacked tokens in every function that seals them with -c tokenPacking=false, and packed by default", () => {
    const sealing = (template: Template) =>
      Object.values(
        template.findResources("AWS::Lambda::Function") as Record<
          string,
          { Properties: { Environment?: { Variables?: Record<string, unknown> } } }
        >,
      )
        .map((fn) => fn.Properties.Environment?.Variables ?? {})
        .filter((vars) => "BRANCH_KEY_ID" in vars);
    const off = sealing(synthWith({ tokenPacking: false }));
    expect(off.length).toBeGreaterThanOrEqual(4);
    for (const vars of off) expect(vars.TOKEN_PACKING).toBe("off");
    for (const vars of sealing(synthWith({}))) expect(vars.TOKEN_PACKING).toBeUndefined();
  }, 120_000);

  it.each([
    ["tokenPacking", "no"],
    ["combinedSecrets", "ture"],
    ["reserveConcurrency", "flase"],
    ["combinedSecrets", 1],
  ])("refuses -c %s=%s instead of reading it as false or true", (name, value) => {
    expect(() => synthWith({ [name]: value })).toThrow(`-c ${name} must be true or false`);
  });

  it("refuses an alarmEmail that is not a string", () => {
    expect(() => synthWith({ alarmEmail: 42 })).toThrow("-c alarmEmail must be a string, got 42");
  });
});

describe("ExactTokenBroker props", () => {
  it("refuses a vendAuthorization token-vend would refuse at start (a team's JavaScript app has no type check)", () => {
    const stack = new Stack(new App(), "Team", { env: ENV });
    expect(
      () =>
        new ExactTokenBroker(stack, "Broker", {
          vendAuthorization: "stackwide" as unknown as VendAuthorization,
        }),
    ).toThrow('vendAuthorization must be one of perConnection, stackWide, got "stackwide"');
  });
});
