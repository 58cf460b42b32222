import { CreateTableCommand, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { EventClock } from "../../bench/outage-pacing.js";
import { countingDynamo, type RequestCounts } from "../../lib/local/counting-dynamo.js";
import { type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";
import { budgetItemKey, createRateBudgetTableInput } from "../../lib/ratebudget/budget-table.js";
import type { RateLimits } from "../../lib/ratebudget/rate-windows.js";
import { SharedRateBudget } from "../../lib/ratebudget/shared-rate-budget.js";

/** 10:00:00 UTC, the top of a minute: windows in tests start where the test says. */
export const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
export const KEY = { clientId: "3f1c2a5e-0000-4000-8000-000000000001", division: 654321 } as const;

/** One budget "process": its own DynamoDB client (counting its requests) on the shared dynalite. */
export interface BudgetProcess {
  readonly budget: SharedRateBudget;
  readonly counts: RequestCounts;
}

/**
 * dynalite with a budget table, on a discrete-event clock: time moves only while every flow
 * waits on the clock (never during a DynamoDB or HTTP request), so each run is the same.
 */
export interface BudgetWorld {
  readonly dynamo: LocalDynamo;
  readonly tableName: string;
  readonly clock: EventClock;
  process(options?: { limits?: Partial<RateLimits>; maxBlock?: number }): BudgetProcess;
  /** The raw budget item of `key` for the day of `atMs`. */
  item(atMs: number): Promise<Record<string, unknown> | undefined>;
  /** Runs `flow` to its end while moving the clock (at most to `untilMs`). */
  drive<T>(flow: () => Promise<T>, untilMs?: number): Promise<T>;
  close(): Promise<void>;
}

let tables = 0;

export async function startBudgetWorld(startMs = T0): Promise<BudgetWorld> {
  const dynamo = await startDynalite();
  tables += 1;
  const tableName = `rate-budget-${process.pid}-${tables}`;
  await dynamo.client.send(new CreateTableCommand(createRateBudgetTableInput(tableName)));
  const clock = new EventClock(startMs);
  const clients: Array<{ destroy(): void }> = [];
  return {
    dynamo,
    tableName,
    clock,
    process(options = {}) {
      const { client, counts } = countingDynamo(dynamo.endpoint);
      client.middlewareStack.add((next) => (args) => clock.track(() => next(args)), {
        step: "initialize",
        name: "trackOnEventClock",
      });
      clients.push(client);
      const budget = new SharedRateBudget({
        tableName,
        client,
        now: clock.now,
        sleep: clock.sleep,
        ...options,
      });
      return { budget, counts };
    },
    async item(atMs) {
      const day = Math.floor(atMs / 86_400_000);
      const out = await dynamo.client.send(
        new GetItemCommand({
          TableName: tableName,
          Key: { pk: { S: budgetItemKey(KEY, day) } },
          ConsistentRead: true,
        }),
      );
      return out.Item === undefined
        ? undefined
        : Object.fromEntries(Object.entries(out.Item).map(([name, value]) => [name, value.N ?? value.S]));
    },
    async drive(flow, untilMs = clock.now() + 3_600_000) {
      let done = false;
      const result = flow().finally(() => {
        done = true;
      });
      // Awaited below; a failure must not surface as unhandled while the clock still runs.
      result.catch(() => undefined);
      await clock.runUntil(untilMs, () => done);
      return result;
    },
    async close() {
      for (const client of clients) client.destroy();
      await dynamo.close();
    },
  };
}

/** DynamoDB requests of one process in all. */
export function total(counts: RequestCounts): number {
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

/** The most of `times` (epoch ms) inside any window of `windowMs` (half-open). */
export function mostInAnyWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end += 1) {
    while ((sorted[end] ?? 0) - (sorted[start] ?? 0) >= windowMs) start += 1;
    best = Math.max(best, end - start + 1);
  }
  return best;
}
