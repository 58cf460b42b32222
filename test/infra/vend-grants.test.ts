import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Stack } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { Role, ServicePrincipal, User } from "aws-cdk-lib/aws-iam";
import { Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBrokerApp } from "../../lib/infra/broker-app.js";
import type { BrokerStack, BrokerStackProps } from "../../lib/infra/broker-stack.js";
import { ExactTokenBroker } from "../../lib/infra/exact-token-broker.js";
import { PythonTool, requirePythonTool } from "../support/python-tools.js";
import { describeWithCfnLint } from "../support/tool-gate.js";

// grantVend's grants at deploy (lib/infra/vend-grants.ts), as `cdk synth` builds the app:
// cdk-nag included (an unacknowledged finding fails the synth), cfn-lint on both templates.

const ENV = { account: "123456789012", region: "eu-west-1" };
const cdkContext = () =>
  (JSON.parse(readFileSync("cdk.json", "utf8")) as { context: Record<string, unknown> }).context;

interface Synthesized {
  readonly app: App;
  readonly stack: BrokerStack;
  readonly consumer: Stack;
  readonly outdir: string;
}

/** The broker and a consumer stack with a function granted two connections and a user granted all. */
function synthesize(stackProps: BrokerStackProps = {}): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), "vend-grants-"));
  const { app, stack } = createBrokerApp({
    app: { outdir, context: { ...cdkContext(), "aws:cdk:bundling-stacks": [] } },
    stack: { env: ENV, ...stackProps },
  });
  const consumer = new Stack(app, "Consumer", { env: ENV });
  const fn = new LambdaFunction(consumer, "Reporting", {
    runtime: Runtime.NODEJS_24_X,
    handler: "index.handler",
    code: Code.fromInline("exports.handler = async () => 1;"),
    role: new Role(consumer, "ReportingRole", {
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
      path: "/apps/",
    }),
  });
  stack.grantVend(fn, { connections: ["acme", "beta"] });
  stack.grantVend(new User(consumer, "Auditor"), { allConnections: true });
  app.synth();
  return { app, stack, consumer, outdir };
}

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

describe("grantVend with connections", () => {
  let synthesized: Synthesized;
  let broker: Template;
  let consumer: Template;
  beforeAll(() => {
    synthesized = synthesize();
    broker = Template.fromStack(synthesized.stack);
    consumer = Template.fromStack(synthesized.consumer);
  }, 120_000);
  afterAll(() => {
    if (synthesized) rmSync(synthesized.outdir, { recursive: true, force: true });
  });

  it("writes one grant per connection at deploy, and the all-connections grant, in the grantee's stack", () => {
    const grants = Object.values(consumer.findResources("Custom::ExactBrokerVendGrant") as Resources);
    const creates = grants.map((g) => JSON.parse(JSON.stringify(g.Properties.Create)) as unknown);

    expect(grants).toHaveLength(3);
    expect(JSON.stringify(creates)).toContain('\\"S\\":\\"GRANTS#acme\\"');
    expect(JSON.stringify(creates)).toContain('\\"S\\":\\"GRANTS#beta\\"');
    expect(JSON.stringify(creates)).toContain('\\"S\\":\\"GRANTS#*\\"');
    expect(broker.findResources("Custom::ExactBrokerVendGrant")).toEqual({});
  });

  it("names each grant after its connection, never by position", () => {
    const ids = Object.keys(consumer.findResources("Custom::ExactBrokerVendGrant"));

    expect(ids).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ExactBrokerVendGrantsConsumerReporting[0-9A-F]{8}Connectionacme[0-9A-F]{8}$/),
        expect.stringMatching(/^ExactBrokerVendGrantsConsumerReporting[0-9A-F]{8}Connectionbeta[0-9A-F]{8}$/),
        expect.stringMatching(/^ExactBrokerVendGrantsConsumerAuditor[0-9A-F]{8}AllConnections[0-9A-F]{8}$/),
      ]),
    );
  });

  it("adds the role's key (account and role name, no path) and its holder on create, and removes it on delete", () => {
    const [grant] = Object.values(consumer.findResources("Custom::ExactBrokerVendGrant") as Resources);
    const create = JSON.stringify(grant?.Properties.Create);
    const remove = JSON.stringify(grant?.Properties.Delete);

    expect(create).toContain("ADD #deployed :element");
    expect(create).toContain('\\"#deployed\\":\\"deployedPrincipals\\"');
    expect(remove).toContain("DELETE #deployed :element");
    // The role's name is a reference; the path (/apps/) is not part of the key. The holder is the
    // stack's name as deployed and the grantee's path in it.
    expect(create).toMatch(
      /:iam::123456789012:role\/",\{"Ref":"ReportingRole[0-9A-F]+"\}," cdk:",\{"Ref":"AWS::StackName"\},"\/Reporting\\"/,
    );
    expect(create).not.toContain("/apps/");
  });

  it("lets the custom resource write only GRANTS# items, and decrypt only through DynamoDB", () => {
    consumer.hasResourceProperties("AWS::IAM::Policy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: "dynamodb:UpdateItem",
            Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["GRANTS#*"] } },
          }),
          Match.objectLike({
            Action: "kms:Decrypt",
            Condition: {
              StringEquals: {
                "kms:ViaService": { "Fn::Join": ["", ["dynamodb.eu-west-1.", { Ref: "AWS::URLSuffix" }]] },
              },
            },
          }),
        ]),
      },
    });
  });

  it("gives the grantee the invoke permission as well", () => {
    consumer.hasResourceProperties("AWS::IAM::Policy", {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Action: "lambda:InvokeFunction" })]),
      },
      Roles: [{ Ref: Match.stringLikeRegexp("^ReportingRole") }],
    });
  });

  it("deploys token-vend perConnection, with the server ID consumers sign and its output", () => {
    broker.hasResourceProperties("AWS::Lambda::Function", {
      Environment: {
        Variables: Match.objectLike({
          VEND_AUTHORIZATION: "perConnection",
          BROKER_SERVER_ID: "exact-token-broker:123456789012:eu-west-1:ExactTokenBroker",
        }),
      },
    });
    broker.hasOutput("BrokerServerId", {
      Value: "exact-token-broker:123456789012:eu-west-1:ExactTokenBroker",
    });
  });

  it("lets token-vend read grant items", () => {
    broker.hasResourceProperties("AWS::IAM::Policy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: "dynamodb:GetItem",
            Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["GRANTS#*"] } },
          }),
        ]),
      },
    });
  });

  describeWithCfnLint("cfn-lint", () => {
    it("finds no errors in the broker's or the consumer's template", () => {
      const templates = [synthesized.stack, synthesized.consumer].map((s) =>
        join(synthesized.outdir, s.templateFile),
      );
      const run = spawnSync(requirePythonTool(PythonTool.CfnLint), ["--format", "json", "--", ...templates], {
        encoding: "utf8",
        timeout: 120_000,
      });
      const errors = (JSON.parse(run.stdout || "[]") as Array<{ Level: string; Message: string }>).filter(
        (m) => m.Level === "Error",
      );

      expect(run.status === null ? "killed" : run.status & 2).toBe(0);
      expect(errors).toEqual([]);
    }, 120_000);
  });
});

describe("grantVend settings", () => {
  it("deploys token-vend stackWide when asked", () => {
    const { stack, outdir } = synthesize({ vendAuthorization: "stackWide", serverId: "broker-eu" });
    try {
      Template.fromStack(stack).hasResourceProperties("AWS::Lambda::Function", {
        Environment: {
          Variables: Match.objectLike({ VEND_AUTHORIZATION: "stackWide", BROKER_SERVER_ID: "broker-eu" }),
        },
      });
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  }, 120_000);

  it.each([
    [{ connections: ["no spaces"] }, /connection "no spaces" is not a connection ID/],
    [{ connections: ["acme"], allConnections: true }, /either connections or allConnections, not both/],
  ])("refuses %j at synth", (options, message) => {
    const { stack } = createBrokerApp({
      app: { context: { ...cdkContext(), "aws:cdk:bundling-stacks": [] } },
      stack: { env: ENV },
    });
    const role = new Role(stack, "Consumer", { assumedBy: new ServicePrincipal("lambda.amazonaws.com") });

    expect(() => stack.grantVend(role, options)).toThrow(message);
  });

  it("refuses grants of a second broker to a grantee of the first, which would land in the first's table", () => {
    const app = new App({ context: { ...cdkContext(), "aws:cdk:bundling-stacks": [] } });
    const team = new Stack(app, "Team", { env: ENV });
    const first = new ExactTokenBroker(team, "Staging");
    const second = new ExactTokenBroker(team, "Production");
    const role = new Role(team, "Consumer", { assumedBy: new ServicePrincipal("lambda.amazonaws.com") });
    first.grantVend(role, { connections: ["acme"] });

    expect(() => second.grantVend(role, { connections: ["acme"] })).toThrow(
      /Team\/Consumer already has connections granted by another broker/,
    );
    expect(() => second.grantVend(role)).not.toThrow();
  });
});
