import { readFileSync } from "node:fs";
import { Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { loadAuthorizationSettings } from "../../lib/auth/authorization-settings.js";
import { createBrokerApp } from "../../lib/infra/broker-app.js";
import { ENV } from "./cfn-grant-deploys.js";

// Finding (medium): `-c vendAuthorization=…` is passed to token-vend's VEND_AUTHORIZATION
// unchecked (broker-app.ts casts the context value). A typo such as `stackwide` — likely on the
// upgrade path the README asks for — synthesizes and deploys without a word, and every
// token-vend container then fails its init (loadAuthorizationSettings throws), so every vend of
// every consumer is an error. The synth checks timing settings this way already; it should
// refuse this one too.

function synthWith(vendAuthorization: string) {
  const context = (JSON.parse(readFileSync("cdk.json", "utf8")) as { context: Record<string, unknown> })
    .context;
  const { stack } = createBrokerApp({
    app: { context: { ...context, vendAuthorization, "aws:cdk:bundling-stacks": [] } },
    stack: { env: ENV },
  });
  return Template.fromStack(stack);
}

describe("-c vendAuthorization with a value token-vend refuses", () => {
  it("fails the synth instead of deploying a token-vend that cannot start", () => {
    let template: Template | undefined;
    let synthError: unknown;
    try {
      template = synthWith("stackwide");
    } catch (error) {
      synthError = error;
    }
    if (template) {
      // What got deployed: token-vend's environment, and what its init does with it.
      const fns = template.findResources("AWS::Lambda::Function") as Record<
        string,
        { Properties: { Environment?: { Variables?: Record<string, unknown> } } }
      >;
      const env = Object.values(fns)
        .map((fn) => fn.Properties.Environment?.Variables ?? {})
        .find((vars) => "VEND_AUTHORIZATION" in vars);
      expect(env?.VEND_AUTHORIZATION).toBe("stackwide");
      expect(() => loadAuthorizationSettings({ VEND_AUTHORIZATION: "stackwide" })).toThrow(
        /VEND_AUTHORIZATION/,
      );
    }
    // Fails: the synth accepted it.
    expect(synthError).toBeInstanceOf(Error);
  }, 120_000);
});
