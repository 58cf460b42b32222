import { readFileSync } from "node:fs";
import { type DynamoDBClient, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { type App, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { GrantStore } from "../../lib/auth/grant-store.js";
import { createBrokerApp } from "../../lib/infra/broker-app.js";
import type { BrokerStack } from "../../lib/infra/broker-stack.js";

// Review of issue 10: grantVend's custom resources, synthesized as `cdk synth` builds them, and
// their SDK calls run against dynalite in the order CloudFormation runs them on a stack update.
// Nothing here is mocked: the calls are the templates' own Create/Update/Delete JSON, with the
// tokens they hold (the imported table name, the role's name, the stack's name) resolved.

export const ENV = { account: "123456789012", region: "eu-west-1" };
/** The consumer stack's name. */
export const CONSUMER = "Consumer";

/** One Custom::ExactBrokerVendGrant, its three calls resolved. */
export interface GrantResource {
  readonly create: string;
  readonly update: string;
  readonly delete: string;
  readonly physicalId: string;
}

type Json = unknown;

function resolve(value: Json, tableName: string, refs: Readonly<Record<string, string>>): string {
  if (typeof value === "string") return value;
  const object = value as Record<string, Json>;
  if (object["Fn::Join"]) {
    const [sep, parts] = object["Fn::Join"] as [string, Json[]];
    return parts.map((part) => resolve(part, tableName, refs)).join(sep);
  }
  if (object["Fn::ImportValue"]) return tableName;
  if (object.Ref === "AWS::StackName") return CONSUMER;
  if (typeof object.Ref === "string") {
    const name = Object.entries(refs).find(([prefix]) => (object.Ref as string).startsWith(prefix))?.[1];
    if (name === undefined) throw new Error(`unresolved Ref ${object.Ref as string}`);
    return name;
  }
  throw new Error(`unresolved ${JSON.stringify(value)}`);
}

/**
 * Synthesizes the broker and a consumer stack that `configure` fills, and returns the consumer's
 * grant resources by logical ID. `refs` names the roles: logical-ID prefix → role name.
 */
export function synthGrants(
  configure: (broker: BrokerStack, consumer: Stack) => void,
  tableName: string,
  refs: Readonly<Record<string, string>>,
): Map<string, GrantResource> {
  const context = (JSON.parse(readFileSync("cdk.json", "utf8")) as { context: Record<string, unknown> })
    .context;
  const { app, stack } = createBrokerApp({
    app: { context: { ...context, "aws:cdk:bundling-stacks": [] } },
    stack: { env: ENV },
  });
  const consumer = new Stack(app as App, CONSUMER, { env: ENV });
  configure(stack, consumer);
  const resources = Template.fromStack(consumer).findResources("Custom::ExactBrokerVendGrant") as Record<
    string,
    { Properties: Record<string, Json> }
  >;
  const out = new Map<string, GrantResource>();
  for (const [id, resource] of Object.entries(resources)) {
    const call = (name: string) => resolve(resource.Properties[name], tableName, refs);
    const physicalId = (JSON.parse(call("Create")) as { physicalResourceId: { id: string } })
      .physicalResourceId.id;
    out.set(id, { create: call("Create"), update: call("Update"), delete: call("Delete"), physicalId });
  }
  return out;
}

/** Runs one AwsCustomResource call (DynamoDB UpdateItem) as the provider does. */
async function run(dynamo: DynamoDBClient, call: string): Promise<void> {
  const { parameters } = JSON.parse(call) as {
    parameters: ConstructorParameters<typeof UpdateItemCommand>[0];
  };
  await dynamo.send(new UpdateItemCommand(parameters));
}

/** The first deployment: every resource created. */
export async function deployFirst(dynamo: DynamoDBClient, next: Map<string, GrantResource>): Promise<void> {
  for (const resource of next.values()) await run(dynamo, resource.create);
}

/**
 * A stack update as CloudFormation runs it for custom resources: new logical IDs are created,
 * changed ones updated (and, when the provider answers a new physical ID, the old physical
 * resource is deleted with its old properties in the cleanup phase), removed ones deleted in the
 * cleanup phase.
 */
export async function deployUpdate(
  dynamo: DynamoDBClient,
  previous: Map<string, GrantResource>,
  next: Map<string, GrantResource>,
): Promise<void> {
  const cleanup: string[] = [];
  for (const [id, resource] of next) {
    const before = previous.get(id);
    if (!before) {
      await run(dynamo, resource.create);
      continue;
    }
    if (before.update === resource.update) continue;
    await run(dynamo, resource.update);
    if (before.physicalId !== resource.physicalId) cleanup.push(before.delete);
  }
  for (const [id, resource] of previous) if (!next.has(id)) cleanup.push(resource.delete);
  for (const call of cleanup) await run(dynamo, call);
}

/**
 * The principals a connection's own GRANTS# item grants, as GrantStore resolves them (the CLI's
 * and the deploy-written ones), deduplicated and sorted.
 */
export async function principalsOf(dynamo: DynamoDBClient, tableName: string, connectionId: string) {
  const { principals, deployed } = await new GrantStore({ tableName, client: dynamo }).list(connectionId);
  return [...new Set([...principals, ...deployed.map((grant) => grant.principal)])].sort();
}
