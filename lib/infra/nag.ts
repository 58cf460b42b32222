import { Stack, Validations } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

/**
 * cdk-nag v3 names each wildcard finding by the resource string its IAM5 rule sees: the
 * resolved ARN with CloudFormation references flattened (`{"Ref":"X"}` → `<X>`,
 * `{"Fn::GetAtt":["X","Arn"]}` → `<X.Arn>`, `Fn::Join` joined). Computing it from the same ARN
 * keeps the acknowledgment exact wherever the stack is synthesized (a region-agnostic stack says
 * `<AWS::Partition>`, one with a region says `aws`).
 */
function flatten(node: unknown): string {
  if (node === undefined) return "";
  if (typeof node === "string") return node.replace(/\$\{/g, "<").replace(/\}/g, ">");
  if (typeof node === "object" && node !== null) {
    const value = node as Record<string, unknown>;
    if (Array.isArray(value["Fn::Join"])) {
      const [delimiter, items] = value["Fn::Join"] as [string, unknown[]];
      return items.map(flatten).join(delimiter);
    }
    if (value["Fn::Sub"] !== undefined) return flatten(value["Fn::Sub"]);
    if (Array.isArray(value["Fn::GetAtt"])) {
      const [resource, attribute] = value["Fn::GetAtt"] as [unknown, unknown];
      return `<${flatten(resource)}.${flatten(attribute)}>`;
    }
    if (value.Ref !== undefined) return `<${flatten(value.Ref)}>`;
  }
  return JSON.stringify(node);
}

/**
 * A cdk-nag AwsSolutions rule (or one finding of it), qualified with the plugin's namespace as
 * the synth output prints it: `AwsSolutions::AwsSolutions-SQS3`.
 */
export function awsSolutionsRule(rule: string): string {
  return `AwsSolutions::AwsSolutions-${rule}`;
}

/** The cdk-nag finding ID of a wildcard resource in an IAM policy. */
export function wildcardResourceFinding(scope: IConstruct, resourceArn: string): string {
  return awsSolutionsRule(`IAM5[Resource::${flatten(Stack.of(scope).resolve(resourceArn))}]`);
}

/**
 * Acknowledges one wildcard resource (and only that one) on the construct that holds the
 * policy, with its reason.
 */
export function acknowledgeWildcardResource(scope: IConstruct, resourceArn: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: wildcardResourceFinding(scope, resourceArn), reason });
}
