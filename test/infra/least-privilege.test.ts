import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type App, type CfnElement, Stack, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { type Grant, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import type { IConstruct } from "constructs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBrokerApp } from "../../lib/infra/broker-app.js";
import type { BrokerStack } from "../../lib/infra/broker-stack.js";
import { CLIENT_SECRET_PREFIX, LOGIN_SECRET_PREFIX } from "../../lib/infra/names.js";

type Statement = { Effect: string; Action: string | string[]; Resource: unknown };
type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

/**
 * The app exactly as `cdk synth` builds it (cdk-nag plugin included), synthesized once. Bundling
 * is skipped here: it changes only the functions' asset hashes, nothing IAM or cdk-nag looks at
 * (broker-stack.test.ts synthesizes with real bundles).
 */
let outdir: string;
let app: App;
let stack: BrokerStack;
let template: Template;
let consumer: Template;
let grant: Grant;
let synthError: unknown;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), "broker-nag-"));
  // cdk.json's context too, as `cdk synth` passes it (partition literals, …).
  const cdkJson = JSON.parse(readFileSync("cdk.json", "utf8")) as { context: Record<string, unknown> };
  ({ app, stack } = createBrokerApp({
    app: { outdir, context: { ...cdkJson.context, "aws:cdk:bundling-stacks": [] } },
    stack: { env: { account: "123456789012", region: "eu-west-1" } },
  }));
  const consumerStack = new Stack(app, "Consumer", { env: { account: "123456789012", region: "eu-west-1" } });
  const role = new Role(consumerStack, "ConsumerRole", {
    assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
  });
  grant = stack.grantVend(role);
  try {
    app.synth();
  } catch (error) {
    synthError = error;
  }
  template = Template.fromStack(stack);
  consumer = Template.fromStack(consumerStack);
}, 60_000);

afterAll(() => {
  rmSync(outdir, { recursive: true, force: true });
});

const id = (construct: IConstruct): string => stack.getLogicalId(construct.node.defaultChild as CfnElement);
const arnOf = (construct: IConstruct) => ({ "Fn::GetAtt": [id(construct), "Arn"] });
const list = (value: string | string[]): string[] => (Array.isArray(value) ? value : [value]);

const prefixArn = (prefix: string) => `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${prefix}*`;

describe("least privilege", () => {
  it("never allows a wildcard action, nor a wildcard resource but the connection-secret prefixes and the setup function's versions", () => {
    const policies = Object.values(template.toJSON().Resources as Resources).filter(
      (r) => r.Type === "AWS::IAM::Policy",
    );
    // One per function: token-vend, refresh, refresh-worker, fallback-login, connect, and the
    // branch key setup and its Provider framework function.
    expect(policies).toHaveLength(7);
    const setup = arnOf(stack.branchKeys.setupFunction);
    for (const policy of policies) {
      for (const statement of (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement) {
        expect(statement.Effect).toBe("Allow");
        for (const action of list(statement.Action)) expect(action).not.toContain("*");
        const text = JSON.stringify(statement.Resource);
        if (text.includes(":*")) {
          // The Provider framework's grantInvoke: the setup function and its versions and aliases (none).
          expect(statement).toEqual({
            Effect: "Allow",
            Action: "lambda:InvokeFunction",
            Resource: [setup, { "Fn::Join": ["", [setup, ":*"]] }],
          });
        } else if (text.includes("*")) {
          // The one kind of wildcard: secrets created after deployment, known only by their name prefix.
          expect([CLIENT_SECRET_PREFIX, LOGIN_SECRET_PREFIX].map((prefix) => prefixArn(prefix))).toContain(
            statement.Resource,
          );
          expect(statement).toEqual({
            Effect: "Allow",
            Action: "secretsmanager:GetSecretValue",
            Resource: statement.Resource,
          });
        }
      }
    }
  });

  it("uses no managed policies: each function's role holds only its own inline policy", () => {
    const roles = template.findResources("AWS::IAM::Role");
    // The five functions', the branch key setup's and its Provider framework function's.
    expect(Object.keys(roles)).toHaveLength(7);
    for (const role of Object.values(roles)) {
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        { Action: "sts:AssumeRole", Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" } },
      ]);
    }
  });

  describe("grantVend", () => {
    const onBudgetItems = { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["RATE#*"] } };

    it("gives a consumer lambda:InvokeFunction on token-vend, Get/UpdateItem on rate budget items, nothing more", () => {
      const policies = consumer.findResources("AWS::IAM::Policy");
      expect(Object.keys(policies)).toHaveLength(1);
      const statements = Object.values(policies)[0]?.Properties.PolicyDocument.Statement;
      expect(statements).toEqual([
        {
          Effect: "Allow",
          Action: "lambda:InvokeFunction",
          Resource: { "Fn::ImportValue": expect.stringMatching(/TokenVend/) },
        },
        {
          Effect: "Allow",
          Action: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
          Resource: { "Fn::ImportValue": expect.stringMatching(/RateBudgetTable/) },
          Condition: onBudgetItems,
        },
      ]);
      expect(grant.success).toBe(true);
      expect(grant.principalStatements.map((s) => stack.resolve(s.toStatementJson()))).toEqual([
        {
          Effect: "Allow",
          Action: "lambda:InvokeFunction",
          Resource: arnOf(stack.functions.tokenVend),
        },
        {
          Effect: "Allow",
          Action: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
          Resource: arnOf(stack.rateBudget.table),
          Condition: onBudgetItems,
        },
      ]);
    });

    it("gives a consumer nothing on the chain table, the token key or the branch key store", () => {
      const resources = grant.principalStatements.map((s) => JSON.stringify(stack.resolve(s.resources)));
      for (const forbidden of [stack.chains.table, stack.tokenKey.key, stack.branchKeys.table]) {
        expect(resources.filter((r) => r.includes(id(forbidden)))).toEqual([]);
      }
      expect(JSON.stringify(consumer.toJSON())).not.toMatch(/Chains|TokenKey|BranchKeys|kms:/);
    });
  });

  describe("cdk-nag AwsSolutions", () => {
    interface Report {
      pluginReports: Array<{
        pluginName: string;
        violations: unknown[];
        suppressedViolations?: Array<{ acknowledgedAt: string; acknowledgedId: string }>;
      }>;
    }
    const report = (): Report => JSON.parse(readFileSync(join(outdir, "validation-report.json"), "utf8"));

    /** Every acknowledgment in the app, from the constructs' metadata. */
    function acknowledgments(): Array<{ path: string; id: string; reason: string }> {
      const found: Array<{ path: string; id: string; reason: string }> = [];
      for (const construct of app.node.findAll()) {
        for (const entry of construct.node.metadata) {
          if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
          for (const [ruleId, reason] of Object.entries(entry.data as Record<string, string>)) {
            found.push({ path: construct.node.path, id: ruleId, reason });
          }
        }
      }
      return found.sort((a, b) => a.path.localeCompare(b.path));
    }

    it("synthesizes with no finding left unacknowledged, errors or warnings", () => {
      expect(synthError).toBeUndefined();
      expect(report().pluginReports.map((r) => r.pluginName)).toEqual(["AwsSolutions"]);
      expect(report().pluginReports.flatMap((r) => r.violations)).toEqual([]);
    });

    it("acknowledges only these findings, each on its own construct and with its reason", () => {
      const finding = (prefix: string) => `AwsSolutions::AwsSolutions-IAM5[Resource::${prefixArn(prefix)}]`;
      const secretFinding = finding(CLIENT_SECRET_PREFIX);
      const setupVersions = `AwsSolutions::AwsSolutions-IAM5[Resource::<${id(stack.branchKeys.setupFunction)}.Arn>:*]`;
      expect(acknowledgments().map(({ path, id }) => ({ path, id }))).toEqual([
        { path: "ExactTokenBroker/Default/BranchKeys/ProviderRole", id: setupVersions },
        { path: "ExactTokenBroker/Default/Functions/ConnectRole", id: secretFinding },
        { path: "ExactTokenBroker/Default/Functions/FallbackLoginRole", id: secretFinding },
        { path: "ExactTokenBroker/Default/Functions/FallbackLoginRole", id: finding(LOGIN_SECRET_PREFIX) },
        { path: "ExactTokenBroker/Default/Functions/HealFailures", id: "AwsSolutions::AwsSolutions-SQS3" },
        // The refresh-worker makes the scheduled token calls; the refresh dispatcher reads no secret.
        { path: "ExactTokenBroker/Default/Functions/RefreshWorkerRole", id: secretFinding },
        { path: "ExactTokenBroker/Default/Functions/TokenVendRole", id: secretFinding },
        { path: "ExactTokenBroker/Default/RateBudget/Table", id: "AwsSolutions::AwsSolutions-DDB3" },
        { path: "ExactTokenBroker/Default/Secrets/LinkSigningKey", id: "AwsSolutions::AwsSolutions-SMG4" },
      ]);
      for (const { id: ruleId, reason } of acknowledgments())
        expect(reason.length, ruleId).toBeGreaterThan(80);
    });

    it("has no stale acknowledgment: each one silences a finding cdk-nag actually reports", () => {
      const suppressed = report()
        .pluginReports.flatMap((r) => r.suppressedViolations ?? [])
        .map((v) => ({ path: v.acknowledgedAt, id: v.acknowledgedId }))
        .sort((a, b) => a.path.localeCompare(b.path));
      expect(suppressed).toEqual(acknowledgments().map(({ path, id }) => ({ path, id })));
    });
  });
});
