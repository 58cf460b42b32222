import { RemovalPolicy, Validations } from "aws-cdk-lib";
import { AttributeType, BillingMode, Table, TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import { Grant, type IGrantable } from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";
import { RATE_BUDGET_TABLE_ENV } from "../client/env-rate-budget.js";
import { RateBudgetTable as Definition } from "../ratebudget/budget-table.js";
import { awsSolutionsRule } from "./nag.js";

/** The item-level DynamoDB actions SharedRateBudget uses (lib/ratebudget/budget-table.ts): nothing else. */
export const RATE_BUDGET_ACTIONS = ["dynamodb:GetItem", "dynamodb:UpdateItem"] as const;

/** The environment variable `grantVend` sets on a consumer function, and the default client reads. */
export { RATE_BUDGET_TABLE_ENV };

/**
 * The table of the shared rate budget (exact-token-broker/rate-budget): one item per (app,
 * division, UTC day), built as `createRateBudgetTableInput` builds it for local runs (partition
 * key `pk`, TTL on `expiresAtEpochSec`, on-demand). A table of its own, apart from the chain
 * table, so that consumers can write to it without getting near a chain.
 *
 * - Encrypted with DynamoDB's own (AWS-owned) key, not the stack's customer-managed token key:
 *   the items hold counters, an app's client ID (not a secret: it travels in every OAuth URL) and
 *   division numbers. A customer-managed key would cost every consumer a `kms:Decrypt` and
 *   `kms:Encrypt` grant via DynamoDB, and every call a KMS request, to protect nothing.
 * - No point-in-time recovery, and destroyed with the stack: an item lives two days at most
 *   (TTL), and a lost item costs nothing but a fresh count. The next claim starts the day's item
 *   anew, and `observe` raises the day's count to Exact's own (`X-RateLimit-Remaining`) at the
 *   first answer. A restored budget would be stale the minute it came back.
 */
export class RateBudgetTableConstruct extends Construct {
  readonly table: Table;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.table = new Table(this, "Table", {
      partitionKey: { name: Definition.partitionKey, type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      encryption: TableEncryption.DEFAULT,
      timeToLiveAttribute: Definition.ttlAttribute,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Validations.of(this.table).acknowledge({
      id: awsSolutionsRule("DDB3"),
      reason:
        "The shared rate budget's items are counters that expire within two days (TTL); a lost item is " +
        "rebuilt by the next claim and by Exact's X-RateLimit headers at the next answer, so a restore " +
        "would bring back only a stale count. Point-in-time recovery would be paid for nothing.",
    });
  }

  /**
   * `dynamodb:GetItem` and `dynamodb:UpdateItem` on the budget's items (`RATE#…` keys), and
   * nothing else: no PutItem, DeleteItem, Scan, Query, batch or transaction call, no other table.
   *
   * The condition names every budget item, not only the grantee's apps': a key is
   * `RATE#<clientId>#<division>#<day>`, and a connection's client ID lives in its Secrets Manager
   * secret, written after deploy and changeable without one, so the synth cannot know it. At
   * worst a consumer can spend (or waste) the budget of an app and division it has no token of,
   * which paces other consumers but reads or changes no chain. It still keeps the grant to
   * budget items should the table ever hold other kinds.
   */
  grantConsumer(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({
      grantee,
      actions: [...RATE_BUDGET_ACTIONS],
      resourceArns: [this.table.tableArn],
      conditions: {
        // Safe with ForAllValues (which holds for a request without keys too): each action names one item.
        "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${Definition.keyPrefix}*`] },
      },
    });
  }
}
