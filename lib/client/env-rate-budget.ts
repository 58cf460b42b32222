import type { RateBudget, RateKey, RateLimitObservation } from "./rate-budget.js";

/** Set by the broker's `grantVend` on a consumer function: the shared rate budget's table. */
export const RATE_BUDGET_TABLE_ENV = "RATE_BUDGET_TABLE_NAME";

export interface EnvRateBudgetOptions {
  /**
   * The budget of one table, created once per table name.
   * @default a `SharedRateBudget` (exact-token-broker/rate-budget), imported on first use
   */
  readonly load?: (tableName: string) => Promise<RateBudget>;
}

/**
 * The SharedRateBudget of the table env `RATE_BUDGET_TABLE_NAME` names (read at each call, as
 * the client reads `TOKEN_VEND_FUNCTION_NAME`), or no budget while it is unset: `acquire` and
 * `observe` then resolve at once, with no DynamoDB request.
 *
 * The budget's module, and with it the DynamoDB client, is imported the first time a call finds
 * the variable set, never at the client's start: a consumer without a budget does not load it.
 * A bundler still packs it (behind the import), unless `@aws-sdk/*` stays external as
 * NodejsFunction leaves it for Node.js 18 and later, where the Lambda runtime provides the SDK.
 */
export class EnvRateBudget implements RateBudget {
  readonly #load: (tableName: string) => Promise<RateBudget>;
  readonly #budgets = new Map<string, Promise<RateBudget>>();

  constructor(options: EnvRateBudgetOptions = {}) {
    this.#load = options.load ?? loadSharedRateBudget;
  }

  /** `SharedRateBudget.acquire` of the environment's table; at once without one. */
  async acquire(key: RateKey, deadlineMs: number): Promise<void> {
    const budget = this.#budget();
    if (budget) await (await budget).acquire(key, deadlineMs);
  }

  /** `SharedRateBudget.observe` of the environment's table; nothing without one. */
  async observe(key: RateKey, observation: RateLimitObservation): Promise<void> {
    const budget = this.#budget();
    if (budget) await (await budget).observe(key, observation);
  }

  #budget(): Promise<RateBudget> | undefined {
    const tableName = process.env[RATE_BUDGET_TABLE_ENV];
    if (!tableName) return undefined;
    let budget = this.#budgets.get(tableName);
    if (!budget) {
      budget = this.#load(tableName);
      // A failed import is not kept: the next call tries again.
      budget.catch(() => this.#budgets.delete(tableName));
      this.#budgets.set(tableName, budget);
    }
    return budget;
  }
}

async function loadSharedRateBudget(tableName: string): Promise<RateBudget> {
  const { SharedRateBudget } = await import("../ratebudget/shared-rate-budget.js");
  return new SharedRateBudget({ tableName });
}
