import { CreateTableCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { App, type CfnElement, Stack } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import type { IConstruct } from "constructs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExactTokenBroker } from "../../lib/infra/exact-token-broker.js";
import { RATE_BUDGET_TABLE_ENV } from "../../lib/infra/rate-budget-table.js";
import { type LocalDynamo, localDynamoClient, startDynalite } from "../../lib/local/dynalite.js";
import { createRateBudgetTableInput, RateBudgetTable } from "../../lib/ratebudget/budget-table.js";
import { DAY_MS, MINUTE_MS } from "../../lib/ratebudget/rate-windows.js";
import { SharedRateBudget } from "../../lib/ratebudget/shared-rate-budget.js";

// The consumers' shared rate budget in the construct (lib/infra/rate-budget-table.ts): the table
// as the library creates it locally, and grantVend's statements against the calls the budget
// makes. cdk-nag and the logical IDs are checked with the whole stack (least-privilege.test.ts,
// broker-construct.test.ts).

type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };
type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

const ENV = { account: "123456789012", region: "eu-west-1" };

let team: Stack;
let broker: ExactTokenBroker;
let reporting: LambdaFunction;
let reportingRole: Role;
let auditRole: Role;
let template: Template;

beforeAll(() => {
  const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
  team = new Stack(app, "Team", { env: ENV });
  broker = new ExactTokenBroker(team, "Broker", {
    vendAuthorization: "perConnection",
    combinedSecrets: false,
  });
  reportingRole = new Role(team, "ReportingRole", {
    assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
  });
  reporting = new LambdaFunction(team, "Reporting", {
    runtime: Runtime.NODEJS_24_X,
    handler: "index.handler",
    code: Code.fromInline("exports.handler = async () => 1;"),
    role: reportingRole,
  });
  // A function granted connections, and a bare role (a consumer outside Lambda) granted none.
  broker.grantVend(reporting, { connections: ["acme"] });
  auditRole = new Role(team, "AuditRole", { assumedBy: new ServicePrincipal("ecs-tasks.amazonaws.com") });
  broker.grantVend(auditRole);
  template = Template.fromStack(team);
}, 60_000);

const id = (construct: IConstruct): string => team.getLogicalId(construct.node.defaultChild as CfnElement);
const arnOf = (construct: IConstruct) => ({ "Fn::GetAtt": [id(construct), "Arn"] });

/** Every statement of the policies attached to a role. */
function statementsOf(role: Role): Statement[] {
  return Object.values(template.toJSON().Resources as Resources)
    .filter(
      (r) =>
        r.Type === "AWS::IAM::Policy" &&
        JSON.stringify(r.Properties.Roles) === JSON.stringify([{ Ref: id(role) }]),
    )
    .flatMap((r) => (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

describe("the rate budget table", () => {
  it("is the table createRateBudgetTableInput creates: pk string, on-demand, TTL on expiresAtEpochSec", () => {
    const local = createRateBudgetTableInput("any");

    template.hasResourceProperties("AWS::DynamoDB::Table", {
      KeySchema: local.KeySchema,
      AttributeDefinitions: local.AttributeDefinitions,
      BillingMode: local.BillingMode,
      TimeToLiveSpecification: { AttributeName: RateBudgetTable.ttlAttribute, Enabled: true },
    });
    const table = (template.toJSON().Resources as Resources)[id(broker.rateBudget.table)];
    expect(table?.Properties.KeySchema).toEqual(local.KeySchema);
    expect(table?.Properties.GlobalSecondaryIndexes).toBeUndefined();
  });

  it("is encrypted with DynamoDB's own key (no KMS grant for consumers), has no PITR, and goes with the stack", () => {
    template.hasResource("AWS::DynamoDB::Table", {
      Properties: Match.objectLike({
        TimeToLiveSpecification: { AttributeName: RateBudgetTable.ttlAttribute, Enabled: true },
        SSESpecification: { SSEEnabled: false },
        PointInTimeRecoverySpecification: Match.absent(),
        DeletionProtectionEnabled: Match.absent(),
      }),
      DeletionPolicy: "Delete",
      UpdateReplacePolicy: "Delete",
    });
  });

  it("is none of the broker functions' business: no broker role names it", () => {
    const fns = broker.functions;
    for (const fn of [fns.tokenVend, fns.refresh, fns.refreshWorker, fns.fallbackLogin, fns.connect]) {
      expect(JSON.stringify(statementsOf(fns.roleOf(fn)))).not.toContain(id(broker.rateBudget.table));
    }
  });
});

describe("grantVend and the rate budget", () => {
  const budgetStatement = () => ({
    Effect: "Allow",
    Action: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
    Resource: arnOf(broker.rateBudget.table),
    Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["RATE#*"] } },
  });

  it.each([
    ["a function granted connections", () => reportingRole],
    ["a role granted none", () => auditRole],
  ])(
    "gives %s the invoke and the budget's items, and nothing on the chain table or its key",
    (_label, role) => {
      expect(statementsOf(role())).toEqual([
        { Effect: "Allow", Action: "lambda:InvokeFunction", Resource: arnOf(broker.functions.tokenVend) },
        budgetStatement(),
      ]);
      const text = JSON.stringify(statementsOf(role()));
      expect(text).not.toContain(id(broker.chains.table));
      expect(text).not.toContain(id(broker.tokenKey.key));
    },
  );

  it("tells a function the table's name in RATE_BUDGET_TABLE_NAME", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      Role: arnOf(reportingRole),
      Environment: { Variables: { [RATE_BUDGET_TABLE_ENV]: { Ref: id(broker.rateBudget.table) } } },
    });
  });

  it("names the items by the prefix the budget's keys start with", () => {
    expect(RateBudgetTable.keyPrefix).toBe("RATE#");
  });
});

describe("the budget's calls against the consumer's statements", () => {
  /** One DynamoDB call of the budget: its action and the item's key. */
  const calls: Array<{ action: string; key: string }> = [];
  let dynamo: LocalDynamo;
  const clients: DynamoDBClient[] = [];
  const tableName = `rate-budget-grant-${process.pid}`;
  // 10:00:30 UTC: mid-minute, mid-day.
  const t0 = Date.UTC(2026, 0, 5, 10, 0, 30);

  function recordingClient(): DynamoDBClient {
    const client = localDynamoClient(dynamo.endpoint);
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { Key?: Record<string, { S?: string }> };
        calls.push({
          action: `dynamodb:${String(context.commandName).replace(/Command$/, "")}`,
          key: input.Key?.[RateBudgetTable.partitionKey]?.S ?? "(no key)",
        });
        return next(args);
      },
      { step: "initialize", name: "recordBudgetCalls" },
    );
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    dynamo = await startDynalite();
    await dynamo.client.send(new CreateTableCommand(createRateBudgetTableInput(tableName)));
  });

  afterAll(async () => {
    for (const client of clients) client.destroy();
    await dynamo?.close();
  });

  it("makes only calls the grant allows: Get and Update of RATE# items of its table", async () => {
    let nowMs = t0;
    const clock = {
      now: () => nowMs,
      sleep: async (ms: number) => {
        nowMs += ms;
      },
    };
    const key = { clientId: "3f1c2a5e-0000-4000-8000-0000000000aa", division: 654321 };
    const [first, second] = [0, 1].map(
      () => new SharedRateBudget({ tableName, client: recordingClient(), ...clock }),
    );
    if (!first || !second) throw new Error("two budgets expected");

    // A claim; another process's claim that loses its condition to it (dynalite: read, claim again);
    // an answer from Exact counting other systems' calls (read, raise the minute and the day).
    await first.acquire(key, nowMs + MINUTE_MS);
    await second.acquire(key, nowMs + MINUTE_MS);
    const minuteEndMs = Math.ceil(nowMs / MINUTE_MS) * MINUTE_MS;
    await first.observe(key, {
      minutelyRemaining: 5,
      minutelyResetAtMs: minuteEndMs,
      dailyRemaining: 100,
      dailyResetAtMs: (Math.floor(nowMs / DAY_MS) + 1) * DAY_MS,
      rateLimited: false,
    });

    const allowed = consumerAllows(reportingRole);
    const refused = calls.filter((c) => !allowed(c.action, c.key));
    expect(refused).toEqual([]);
    // Every path ran: claims, the read after a lost claim, the raises.
    expect(new Set(calls.map((c) => c.action))).toEqual(new Set(["dynamodb:GetItem", "dynamodb:UpdateItem"]));
    expect(calls.filter((c) => c.action === "dynamodb:UpdateItem").length).toBeGreaterThanOrEqual(4);
  });

  /** The role's statements on the budget table, as a predicate over one call (IAM's StringLike). */
  function consumerAllows(role: Role): (action: string, key: string) => boolean {
    const table = JSON.stringify(arnOf(broker.rateBudget.table));
    const like = (pattern: string, value: string) =>
      new RegExp(
        `^${pattern
          .split("*")
          .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
          .join(".*")}$`,
      ).test(value);
    const onTable = statementsOf(role).filter((s) => JSON.stringify(s.Resource) === table);
    return (action, key) =>
      onTable.some((s) => {
        const actions = Array.isArray(s.Action) ? s.Action : [s.Action];
        const leading = (s.Condition as Record<string, Record<string, string[]>> | undefined)?.[
          "ForAllValues:StringLike"
        ]?.["dynamodb:LeadingKeys"];
        return actions.includes(action) && (leading === undefined || leading.some((p) => like(p, key)));
      });
  }
});
