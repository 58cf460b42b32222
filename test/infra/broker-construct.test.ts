import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type App, type CfnElement, Stack } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { type Grant, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import type { IConstruct } from "constructs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addBrokerOutputs } from "../../lib/infra/broker-outputs.js";
import type { BrokerStack } from "../../lib/infra/broker-stack.js";
import { PROJECT_ROOT, projectFiles } from "../../lib/infra/bundling.js";
import { ExactTokenBroker } from "../../lib/infra/exact-token-broker.js";
import { PythonTool, requirePythonTool } from "../support/python-tools.js";
import { describeWithCfnLint } from "../support/tool-gate.js";
import { createFixtureApp, type LogicalIds, logicalIdsOf, readFixture } from "./logical-ids.js";

// The broker as a construct (lib/infra/exact-token-broker.ts), in ONE app synthesized once
// without bundling (asset keys aside, bundling changes nothing here): the bundled app's stack,
// which must keep every logical ID it was deployed with, and a team's own stack holding the
// construct beside its own function, as the README shows it.

const ENV = { account: "123456789012", region: "eu-west-1" };

let outdir: string;
let app: App;
let brokerStack: BrokerStack;
let team: Stack;
let broker: ExactTokenBroker;
let reporting: LambdaFunction;
let grant: Grant;
let synthError: unknown;
let fixture: LogicalIds;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), "broker-construct-"));
  ({ app, stack: brokerStack } = createFixtureApp(outdir));
  team = new Stack(app, "TeamReporting", { env: ENV });
  broker = new ExactTokenBroker(team, "Broker", {
    alarmEmail: "ops@example.com",
    vendAuthorization: "perConnection",
    combinedSecrets: false,
  });
  reporting = new LambdaFunction(team, "Reporting", {
    runtime: Runtime.NODEJS_24_X,
    handler: "index.handler",
    code: Code.fromInline("exports.handler = async () => 1;"),
    // Its own role, as cdk-nag wants it (no AWSLambdaBasicExecutionRole): the team's part passes too.
    role: new Role(team, "ReportingRole", { assumedBy: new ServicePrincipal("lambda.amazonaws.com") }),
  });
  grant = broker.grantVend(reporting, { connections: ["acme"] });
  addBrokerOutputs(team, broker);
  try {
    app.synth();
  } catch (error) {
    synthError = error;
  }
  fixture = readFixture();
}, 60_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

const idIn = (stack: Stack, construct: IConstruct): string =>
  stack.getLogicalId(construct.node.defaultChild as CfnElement);
const sortedTypes = (resources: Record<string, string>): string[] => Object.values(resources).sort();

describe("BrokerStack, the bundled app", () => {
  it("synthesizes exactly the logical IDs and types it was deployed with: nothing is replaced", () => {
    expect(logicalIdsOf(brokerStack)).toEqual(fixture);
  });

  it("keeps the chain table and the token key where every chain lives, whatever the fixture says", () => {
    // Pinned here as well: a fixture regenerated without reading its diff must not hide these two.
    expect(idIn(brokerStack, brokerStack.chains.table)).toBe("ChainsTable2DFD38EC");
    expect(idIn(brokerStack, brokerStack.tokenKey.key)).toBe("TokenKey812BBFC4");
  });

  it("is the construct: the stack's resources are the broker's", () => {
    expect(brokerStack.broker).toBeInstanceOf(ExactTokenBroker);
    expect(brokerStack.functions).toBe(brokerStack.broker.functions);
  });
});

describe("ExactTokenBroker in a team's own stack", () => {
  let template: Template;
  beforeAll(() => {
    template = Template.fromStack(team);
  });

  it("brings the whole broker, resource for resource, named after the team's construct ID", () => {
    const ids = logicalIdsOf(team);
    const mine = Object.fromEntries(Object.entries(ids.resources).filter(([id]) => id.startsWith("Broker")));

    expect(sortedTypes(mine)).toEqual(sortedTypes(fixture.resources));
    expect(Object.keys(mine)).toContain(idIn(team, broker.chains.table));
    expect(ids.outputs).toEqual(fixture.outputs);
  });

  it("grantVend lets the team's function invoke token-vend in the same stack, and grants it acme", () => {
    const tokenVendArn = { "Fn::GetAtt": [idIn(team, broker.functions.tokenVend), "Arn"] };
    template.hasResourceProperties("AWS::IAM::Policy", {
      Roles: [{ Ref: idIn(team, reporting.role as Role) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          { Effect: "Allow", Action: "lambda:InvokeFunction", Resource: tokenVendArn },
        ]),
      },
    });
    const grants = Object.values(template.findResources("Custom::ExactBrokerVendGrant"));
    expect(grants).toHaveLength(1);
    const create = JSON.stringify(grants[0]?.Properties.Create);
    expect(create).toContain('\\"S\\":\\"GRANTS#acme\\"');
    expect(create).toContain(JSON.stringify({ Ref: idIn(team, broker.chains.table) }));
    expect(grant.success).toBe(true);
  });

  it("signs for the team's stack: the default server ID names it", () => {
    const serverId = "exact-token-broker:123456789012:eu-west-1:TeamReporting";
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: { Variables: Match.objectLike({ BROKER_SERVER_ID: serverId }) },
    });
    template.hasOutput("BrokerServerId", { Value: serverId });
  });

  it("passes cdk-nag's AwsSolutions checks with the broker's acknowledgments under the team's path", () => {
    const report = JSON.parse(readFileSync(join(outdir, "validation-report.json"), "utf8")) as {
      pluginReports: Array<{
        violations: unknown[];
        suppressedViolations?: Array<{ acknowledgedAt: string }>;
      }>;
    };
    const acknowledged = report.pluginReports.flatMap((r) => r.suppressedViolations ?? []);

    expect(synthError).toBeUndefined();
    expect(report.pluginReports.flatMap((r) => r.violations)).toEqual([]);
    expect(acknowledged.map((v) => v.acknowledgedAt)).toContain(
      "TeamReporting/Broker/Functions/TokenVendRole",
    );
  });

  describeWithCfnLint("cfn-lint", () => {
    it("finds no errors in the team's template", () => {
      const run = spawnSync(
        requirePythonTool(PythonTool.CfnLint),
        ["--format", "json", "--regions", ENV.region, "--", join(outdir, team.templateFile)],
        { encoding: "utf8", timeout: 120_000 },
      );
      const errors = (JSON.parse(run.stdout || "[]") as Array<{ Level: string; Message: string }>).filter(
        (m) => m.Level === "Error",
      );

      expect(run.status === null ? "killed" : run.status & 2).toBe(0);
      expect(errors).toEqual([]);
    }, 120_000);
  });
});

describe("the built package", () => {
  it("leaves the project root and lock file to NodejsFunction where none is shipped (installed in an app)", () => {
    const installed = mkdtempSync(join(tmpdir(), "exact-token-broker-"));
    try {
      // npm publishes no package-lock.json: NodejsFunction then uses the app's, and its directory.
      expect(projectFiles(installed)).toEqual({});
      expect(projectFiles(PROJECT_ROOT)).toEqual({
        projectRoot: PROJECT_ROOT,
        depsLockFilePath: join(PROJECT_ROOT, "package-lock.json"),
      });
    } finally {
      rmSync(installed, { recursive: true, force: true });
    }
  });

  it("exports the construct as exact-token-broker/cdk", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      "--input-type=module",
      "-e",
      'const m = await import("exact-token-broker/cdk"); console.log(typeof m.ExactTokenBroker, typeof m.BrokerStack, typeof m.addBrokerOutputs);',
    ]);
    expect(stdout.trim()).toBe("function function function");
  });
});
