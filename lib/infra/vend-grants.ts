import { Aws, Names, Stack, Validations } from "aws-cdk-lib";
import type { ITable } from "aws-cdk-lib/aws-dynamodb";
import { Effect, type IGrantable, type IPrincipal, PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { IKey } from "aws-cdk-lib/aws-kms";
import {
  AwsCustomResource,
  AwsCustomResourcePolicy,
  type AwsSdkCall,
  PhysicalResourceId,
} from "aws-cdk-lib/custom-resources";
import { Construct, type IConstruct } from "constructs";
import { ALL_CONNECTIONS, DEPLOYED_PRINCIPALS_ATTRIBUTE, deployedGrantElement } from "../auth/grant-store.js";
import { ChainTable, grantsKey } from "../chain/table-definition.js";
import { CONNECTION_ID_PATTERN } from "../handlers/connection-id.js";
import { awsSolutionsRule } from "./nag.js";

/** Which connections `grantVend` lets token-vend serve the grantee (VEND_AUTHORIZATION=perConnection). */
export interface VendGrantOptions {
  /** Connection IDs the grantee may get tokens of. @default none: only the invoke permission (grant with the CLI) */
  readonly connections?: readonly string[];
  /** Every connection of the stack, present and future; the only way to grant everything. @default false */
  readonly allConnections?: boolean;
}

/** What the grants are written into: the broker's table and the key it is encrypted with. */
export interface VendGrantTarget {
  readonly table: ITable;
  readonly key: IKey;
}

/**
 * The principal key (lib/auth/principal.ts) of a grantee, as CloudFormation resolves it: a role
 * (a Lambda function's, most often) becomes `arn:PARTITION:iam::ACCOUNT:role/NAME` without its
 * path, because STS names a role's sessions by account and role name only; a user stays its ARN.
 *
 * @throws Error (at synth) for a grantee that is neither a role nor a user
 */
export function vendGrantPrincipal(grantee: IGrantable): string {
  const principal: IPrincipal & Partial<{ roleName: string; userArn: string }> = grantee.grantPrincipal;
  if (typeof principal.roleName === "string" && Construct.isConstruct(principal)) {
    const role = principal as IPrincipal & IConstruct & { roleName: string; env: { account: string } };
    return `arn:${Stack.of(role).partition}:iam::${role.env.account}:role/${role.roleName}`;
  }
  if (typeof principal.userArn === "string") return principal.userArn;
  throw new Error(
    "grantVend with connections or allConnections needs a grantee that runs as an IAM role or user " +
      "(a Lambda function, a role, a user); grant other principals with: exact-broker grant",
  );
}

function checkOptions(options: VendGrantOptions): readonly string[] {
  const connections = options.connections ?? [];
  if (options.allConnections && connections.length > 0) {
    throw new Error("grantVend: give either connections or allConnections, not both");
  }
  for (const id of connections) {
    if (!CONNECTION_ID_PATTERN.test(id)) {
      throw new Error(
        `grantVend: connection "${id}" is not a connection ID (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)`,
      );
    }
  }
  return options.allConnections ? [ALL_CONNECTIONS] : [...new Set(connections)];
}

/**
 * Writes a grantee's grants into the broker's table at deploy, and removes them when the
 * grantee, a connection or the stack goes: one custom resource per connection, named after it,
 * each an UpdateItem that ADDs `<principal key> cdk:<stack name>/<grantee's path>` to the
 * connection's `deployedPrincipals` string set (and DELETEs it on delete). Every element has one
 * writer: a connection dropped from the list deletes its own resource only, and two grantees
 * sharing a role write two elements, so removing one leaves the other's grant. Set operations are
 * atomic, and the CLI's grants live in `principals`, so neither another stack nor the CLI loses
 * a grant to this resource.
 *
 * Grants written before the holder was stored (resources named `Grant1`, `Grant2`, … adding the
 * bare principal key to `principals`) are removed by those resources' delete in the cleanup of
 * the first deploy with this version, after the new resources wrote theirs: the connections stay
 * granted throughout, but a CLI grant of the same principal and connection goes with them.
 *
 * It lives in the grantee's stack (next to its invoke permission; the broker stack cannot refer
 * to a consumer stack that already refers to it) and may write only `GRANTS#` items: a
 * `dynamodb:LeadingKeys` condition, and `kms:Decrypt` only through DynamoDB (what a caller of a
 * table encrypted with a customer-managed key needs), so it can neither read a chain nor decrypt
 * a token.
 */
export class VendGrants extends Construct {
  readonly #target: VendGrantTarget;
  readonly #element: string;
  readonly #written = new Set<string>();

  /**
   * The grantee's grants construct in its own stack: one per grantee, shared by its grantVend calls.
   *
   * @throws Error (at synth) when the grantee already has grants of another broker: its grants
   *   construct writes into one table, and would write the second broker's grants into the first's
   */
  static of(target: VendGrantTarget, grantee: IGrantable & IConstruct): VendGrants {
    const stack = Stack.of(grantee);
    const id = `ExactBrokerVendGrants${Names.uniqueId(grantee)}`;
    const existing = stack.node.tryFindChild(id);
    if (!(existing instanceof VendGrants)) return new VendGrants(stack, id, target, grantee);
    if (existing.#target.table !== target.table) {
      throw new Error(
        `grantVend: ${grantee.node.path} already has connections granted by another broker; grant it ` +
          "this broker's connections with exact-broker grant (grantVend without options gives the invoke permission)",
      );
    }
    return existing;
  }

  private constructor(scope: Stack, id: string, target: VendGrantTarget, grantee: IGrantable & IConstruct) {
    super(scope, id);
    this.#target = target;
    // The holder is the grantee's path in its stack, the one thing this construct's ID (and so its
    // resources' logical IDs) derives from: a grantee moved in the tree gets new resources, which
    // write new elements before the old resources delete theirs.
    const constructPath = grantee.node.path.slice(scope.node.path.length + 1);
    this.#element = deployedGrantElement(vendGrantPrincipal(grantee), Aws.STACK_NAME, constructPath);
  }

  /** Adds the grants `options` names (none for empty options). */
  add(options: VendGrantOptions): void {
    for (const connectionId of checkOptions(options)) {
      if (this.#written.has(connectionId)) continue;
      this.#written.add(connectionId);
      this.#grant(connectionId);
    }
  }

  #grant(connectionId: string): void {
    const { table, key } = this.#target;
    const call = (operation: "ADD" | "DELETE"): AwsSdkCall => ({
      service: "DynamoDB",
      action: "UpdateItem",
      parameters: {
        TableName: table.tableName,
        Key: { [ChainTable.partitionKey]: { S: grantsKey(connectionId) } },
        UpdateExpression: `${operation} #deployed :element`,
        ExpressionAttributeNames: { "#deployed": DEPLOYED_PRINCIPALS_ATTRIBUTE },
        ExpressionAttributeValues: { ":element": { SS: [this.#element] } },
      },
      // A new element (the role renamed) is a new physical ID: CloudFormation then deletes the old one.
      physicalResourceId: PhysicalResourceId.of(`${grantsKey(connectionId)}|${this.#element}`),
    });
    const stack = Stack.of(this);
    // Named by connection, never by position: a resource that changed connection would ADD the
    // new one and then, with its old properties, DELETE the old one from under another resource.
    const id = connectionId === ALL_CONNECTIONS ? "AllConnections" : `Connection.${connectionId}`;
    new AwsCustomResource(this, id, {
      resourceType: "Custom::ExactBrokerVendGrant",
      onCreate: call("ADD"),
      onUpdate: call("ADD"),
      onDelete: call("DELETE"),
      // The SDK in the Lambda runtime: nothing is downloaded at deploy.
      installLatestAwsSdk: false,
      policy: AwsCustomResourcePolicy.fromStatements([
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ["dynamodb:UpdateItem"],
          resources: [table.tableArn],
          conditions: {
            "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${grantsKey("")}*`] },
          },
        }),
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ["kms:Decrypt"],
          resources: [key.keyArn],
          conditions: { StringEquals: { "kms:ViaService": `dynamodb.${stack.region}.${stack.urlSuffix}` } },
        }),
      ]),
    });
    acknowledgeProviderFindings(stack);
  }
}

/** Stacks whose AwsCustomResource provider findings are acknowledged already. */
const acknowledged = new WeakSet<Stack>();

/**
 * cdk-nag findings on the provider function AwsCustomResource shares per stack (its code and
 * role come from aws-cdk-lib). Acknowledged once per stack, with the reason.
 */
function acknowledgeProviderFindings(stack: Stack): void {
  const provider = stack.node.tryFindChild(AWS_CUSTOM_RESOURCE_PROVIDER_ID);
  if (!provider || acknowledged.has(stack)) return;
  acknowledged.add(stack);
  Validations.of(provider).acknowledge({
    id: awsSolutionsRule(
      "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
    ),
    reason:
      "aws-cdk-lib's AwsCustomResource provider (vend grants written at deploy) runs with the basic execution " +
      "role for its own logs; its only other permissions are UpdateItem on GRANTS# items and kms:Decrypt via DynamoDB.",
  });
}

/** The construct ID aws-cdk-lib gives AwsCustomResource's singleton provider function. */
const AWS_CUSTOM_RESOURCE_PROVIDER_ID = "AWS679f53fac002430cb0da5b7982bd2287";
