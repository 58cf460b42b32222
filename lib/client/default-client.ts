import { EnvRateBudget } from "./env-rate-budget.js";
import type { ExactFetchInit, ExactPagesOptions } from "./exact-fetch.js";
import {
  type AccessToken,
  type GetAccessTokenOptions,
  type InvalidateOptions,
  TokenClient,
} from "./token-client.js";

/**
 * The process-wide client behind the module functions: module state, so a warm Lambda container
 * keeps its tokens (and its rate budget's slots) between invocations. Its LambdaClient is created
 * on first use; it calls Exact with the global `fetch`, paced by the shared rate budget of env
 * `RATE_BUDGET_TABLE_NAME` (set by the broker's `grantVend` on a function) and not paced while
 * that is unset (env-rate-budget.ts).
 */
const defaultClient = new TokenClient({ rateBudget: new EnvRateBudget() });

/** `TokenClient.getAccessToken` on the process-wide client. */
export function getAccessToken(connectionId: string, options?: GetAccessTokenOptions): Promise<AccessToken> {
  return defaultClient.getAccessToken(connectionId, options);
}

/** `TokenClient.invalidate` on the process-wide client: call it after a 401 from Exact. */
export function invalidate(connectionId: string, options?: InvalidateOptions): void {
  defaultClient.invalidate(connectionId, options);
}

/** `TokenClient.exactFetch` on the process-wide client. */
export function exactFetch(connectionId: string, path: string, init?: ExactFetchInit): Promise<Response> {
  return defaultClient.exactFetch(connectionId, path, init);
}

/** `TokenClient.exactPages` on the process-wide client. */
export function exactPages<Row = Record<string, unknown>>(
  connectionId: string,
  path: string,
  options?: ExactPagesOptions,
): AsyncGenerator<Row[], void, undefined> {
  return defaultClient.exactPages<Row>(connectionId, path, options);
}
