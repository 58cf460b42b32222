import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type CreateTableCommandInput,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import type { RateKey } from "../client/rate-budget.js";
import { type BudgetState, DAY_MS, type Plan } from "./rate-windows.js";

/**
 * The rate budget's own DynamoDB table, apart from the broker's chain table: consumers get
 * `dynamodb:UpdateItem` and `dynamodb:GetItem` on this table and nothing on the chain table.
 *
 * One item per (app, division, UTC day), `pk = RATE#<clientId>#<division>#<YYYY-MM-DD>`:
 *
 * | attribute           | meaning                                                          |
 * | ------------------- | ---------------------------------------------------------------- |
 * | `minute`            | epoch minute `next` counts in                                    |
 * | `next`              | first slot of that minute not handed out (rate-windows.ts)       |
 * | `dayCalls`          | calls handed out this day                                        |
 * | `excessSeen`        | outside calls the minute's last raise made room for (observe)    |
 * | `expiresAtEpochSec` | DynamoDB TTL: a day after the day ended                          |
 *
 * Every write is one conditional UpdateItem; a claim never reads first.
 */
export const RateBudgetTable = {
  partitionKey: "pk",
  /** Every item's key starts with it: what a consumer's `dynamodb:LeadingKeys` condition names. */
  keyPrefix: "RATE#",
  /** DynamoDB TTL wants epoch seconds. */
  ttlAttribute: "expiresAtEpochSec",
} as const;

/** CreateTable input for tests and local runs. On-demand billing, as the chain table. */
export function createRateBudgetTableInput(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [{ AttributeName: RateBudgetTable.partitionKey, AttributeType: "S" }],
    KeySchema: [{ AttributeName: RateBudgetTable.partitionKey, KeyType: "HASH" }],
  };
}

/** The item's key for `day` (epoch days: `floor(ms / 86400000)`). */
export function budgetItemKey(key: RateKey, day: number): string {
  const date = new Date(day * DAY_MS).toISOString().slice(0, 10);
  return `${RateBudgetTable.keyPrefix}${key.clientId}#${key.division}#${date}`;
}

/** The plans that write: take slots from the item's `next` (advance), or from the grid's floor (restart). */
export type ClaimPlan = Extract<Plan, { kind: "advance" | "restart" }>;

/** A claim that took slots `first … first + k − 1`, or lost its condition (with the item, when DynamoDB sent it). */
export type ClaimOutcome =
  | { readonly ok: true; readonly first: number; readonly state: BudgetState }
  | { readonly ok: false; readonly state: BudgetState | undefined };

const NAMES = {
  "#m": "minute",
  "#n": "next",
  "#d": "dayCalls",
  "#x": "excessSeen",
  "#t": RateBudgetTable.ttlAttribute,
};

const num = (value: number): AttributeValue => ({ N: String(value) });

function toState(item: Record<string, AttributeValue> | undefined): BudgetState {
  const read = (name: string): number | undefined => {
    const value = item?.[name]?.N;
    return value === undefined ? undefined : Number(value);
  };
  return {
    minute: read("minute"),
    next: read("next"),
    dayCalls: read("dayCalls"),
    excessSeen: read("excessSeen"),
  };
}

interface Write {
  readonly update: string;
  readonly condition: string;
  readonly values: Record<string, AttributeValue>;
}

/** The budget's DynamoDB requests: one GetItem or one conditional UpdateItem each. */
export class BudgetTable {
  /** @param dayCap the calls the day's budget hands out (RateWindows.dayCap). */
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly dayCap: number,
  ) {}

  /** The item of `day`, strongly consistent (an absent item is an empty state). */
  async read(key: RateKey, day: number): Promise<BudgetState> {
    const out = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { pk: { S: budgetItemKey(key, day) } },
        ConsistentRead: true,
      }),
    );
    return toState(out.Item);
  }

  /** Takes `plan.k` slots (and gives `giveBack` back to the day) if the item still allows it. */
  async claim(key: RateKey, day: number, plan: ClaimPlan, giveBack: number): Promise<ClaimOutcome> {
    const dayDelta = plan.k - giveBack;
    // What is left of the day must cover what the claim adds.
    const dayRoom = "(attribute_not_exists(#d) OR #d <= :dayMax)";
    const common = { ":m": num(plan.minute), ":dd": num(dayDelta), ":dayMax": num(this.dayCap - dayDelta) };
    const write: Write =
      plan.kind === "advance"
        ? {
            // An item a raise created (observe) has no day count yet.
            update: "SET #n = #n + :k, #d = if_not_exists(#d, :zero) + :dd",
            condition: `#m = :m AND #n BETWEEN :floor AND :maxFirst AND ${dayRoom}`,
            values: {
              ...common,
              ":k": num(plan.k),
              ":zero": num(0),
              ":floor": num(plan.floor),
              ":maxFirst": num(plan.maxFirst),
            },
          }
        : {
            // The item is of an earlier minute (or the day's first), or its next fell behind the
            // grid: the slots before `first` are late and skipped; the day counts only those taken.
            update: "SET #m = :m, #n = :next, #t = :ttl ADD #d :dd REMOVE #x",
            condition: `(attribute_not_exists(#m) OR #m < :m OR (#m = :m AND #n < :first)) AND ${dayRoom}`,
            values: {
              ...common,
              ":first": num(plan.first),
              ":next": num(plan.first + plan.k),
              ":ttl": num(this.expiresAtEpochSec(day)),
            },
          };
    const result = await this.update(key, day, write);
    if (!result.ok) return result;
    return { ok: true, first: (result.state.next ?? plan.k) - plan.k, state: result.state };
  }

  /**
   * Exact counted more calls this minute than ours explain (callers outside the broker, or a
   * 429): moves the minute's `next` up to `target`, so the rest of the minute leaves room for
   * them. `excess` (Exact's count over our grid) is kept: a later answer showing the same outside
   * calls raises only by what is new. Returns the item after the write, undefined if it lost.
   */
  async raiseMinute(
    key: RateKey,
    day: number,
    raise: { minute: number; target: number; excess: number; sameMinute: boolean },
  ): Promise<BudgetState | undefined> {
    const values = { ":m": num(raise.minute), ":target": num(raise.target), ":excess": num(raise.excess) };
    const write: Write = raise.sameMinute
      ? {
          update: "SET #n = :target, #x = :excess",
          condition: "#m = :m AND #n < :target AND (attribute_not_exists(#x) OR #x < :excess)",
          values,
        }
      : {
          update: "SET #m = :m, #n = :target, #x = :excess, #t = :ttl",
          condition: "attribute_not_exists(#m) OR #m < :m",
          values: { ...values, ":ttl": num(this.expiresAtEpochSec(day)) },
        };
    const result = await this.update(key, day, write);
    return result.ok ? result.state : undefined;
  }

  /** Exact counted more calls today than ours explain: raises the day's count to `target`. */
  async raiseDay(key: RateKey, day: number, target: number): Promise<BudgetState | undefined> {
    const result = await this.update(key, day, {
      update: "SET #d = :target, #t = :ttl",
      condition: "attribute_not_exists(#d) OR #d < :target",
      values: { ":target": num(target), ":ttl": num(this.expiresAtEpochSec(day)) },
    });
    return result.ok ? result.state : undefined;
  }

  /** Expired items are gone within days of this (DynamoDB TTL); a day after the day ended. */
  private expiresAtEpochSec(day: number): number {
    return ((day + 2) * DAY_MS) / 1000;
  }

  private async update(
    key: RateKey,
    day: number,
    write: Write,
  ): Promise<{ ok: true; state: BudgetState } | { ok: false; state: BudgetState | undefined }> {
    const used = (text: string) =>
      Object.fromEntries(Object.entries(NAMES).filter(([name]) => text.includes(name)));
    try {
      const out = await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: budgetItemKey(key, day) } },
          UpdateExpression: write.update,
          ConditionExpression: write.condition,
          ExpressionAttributeNames: used(`${write.update} ${write.condition}`),
          ExpressionAttributeValues: write.values,
          ReturnValues: "ALL_NEW",
          // Real DynamoDB hands the loser the item and saves it a read; dynalite sends nothing.
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return { ok: true, state: toState(out.Attributes) };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      return { ok: false, state: error.Item === undefined ? undefined : toState(error.Item) };
    }
  }
}
