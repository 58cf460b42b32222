/**
 * exact-token-broker/rate-budget: Exact's API rate limits shared by every consumer of one (app,
 * division), in a DynamoDB table of its own.
 *
 *   import { SharedRateBudget } from "exact-token-broker/rate-budget";
 *   const rateBudget = new SharedRateBudget({ tableName: process.env.RATE_BUDGET_TABLE_NAME });
 *
 * Apart from exact-token-broker/client, whose module functions import it only when env
 * RATE_BUDGET_TABLE_NAME is set (lib/client/env-rate-budget.ts): consumers who do not share a
 * budget never load the DynamoDB client. Loads @aws-sdk/client-dynamodb and nothing of the
 * broker's engine.
 */

export type { RateBudget, RateKey, RateLimitObservation } from "../client/rate-budget.js";
export { parseRateLimitHeaders } from "../client/rate-limit-headers.js";
export { Throttled } from "../errors.js";
export { budgetItemKey, createRateBudgetTableInput, RateBudgetTable } from "./budget-table.js";
export { EXACT_RATE_LIMITS, type RateLimits } from "./rate-windows.js";
export { DEFAULT_MAX_BLOCK, SharedRateBudget, type SharedRateBudgetOptions } from "./shared-rate-budget.js";
