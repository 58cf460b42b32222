import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { App, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { createBrokerApp } from "../../lib/infra/broker-app.js";
import type { BrokerStack, BrokerStackProps } from "../../lib/infra/broker-stack.js";

/**
 * The logical IDs of the deployed stack, the identity CloudFormation keys every resource by: a
 * resource whose logical ID changes is deleted and created anew on the next deploy (the chain
 * table with every live refresh-token chain, the key that encrypts them). The fixture records
 * them as `cdk deploy` synthesizes the bundled app; scripts/capture-logical-ids.ts writes it and
 * test/infra/broker-construct.test.ts holds every later synth to it.
 */

/** `{ resources: { logicalId: "AWS::Type" }, outputs: [logicalId] }`, keys sorted. */
export interface LogicalIds {
  readonly resources: Record<string, string>;
  readonly outputs: readonly string[];
}

/** The committed record of the deployed stack's logical IDs. */
export const FIXTURE_PATH = join(import.meta.dirname, "fixtures", "stack-logical-ids.json");

/**
 * The stack's props for the record: every optional part that adds a resource switched on
 * (alarmEmail adds the topic's subscription); no prop changes an ID of the default stack.
 */
export const FIXTURE_PROPS: BrokerStackProps = { alarmEmail: "ops@example.com" };

/** A synthesized stack's resources' logical IDs and types, and its outputs' logical IDs. */
export function logicalIdsOf(stack: Stack): LogicalIds {
  const template = Template.fromStack(stack).toJSON() as {
    Resources?: Record<string, { Type: string }>;
    Outputs?: Record<string, unknown>;
  };
  const resources = Object.entries(template.Resources ?? {})
    .map(([id, resource]) => [id, resource.Type] as const)
    .sort(([a], [b]) => a.localeCompare(b));
  return {
    resources: Object.fromEntries(resources),
    outputs: Object.keys(template.Outputs ?? {}).sort(),
  };
}

/**
 * The bundled app as `cdk synth` builds it (cdk.json's context, cdk-nag included) with
 * {@link FIXTURE_PROPS}, writing its cloud assembly to `outdir` (a temporary one by default).
 * Bundling is skipped: it changes only the functions' asset keys.
 */
export function createFixtureApp(outdir?: string): { app: App; stack: BrokerStack } {
  const cdkJson = JSON.parse(readFileSync("cdk.json", "utf8")) as { context: Record<string, unknown> };
  return createBrokerApp({
    app: { ...(outdir ? { outdir } : {}), context: { ...cdkJson.context, "aws:cdk:bundling-stacks": [] } },
    stack: FIXTURE_PROPS,
  });
}

/** The committed record ({@link FIXTURE_PATH}). */
export function readFixture(): LogicalIds {
  return JSON.parse(readFileSync(FIXTURE_PATH, "utf8")) as LogicalIds;
}
