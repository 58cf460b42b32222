import { type AccessToken, type GetAccessTokenOptions, TokenClient } from "./token-client.js";

/**
 * The process-wide client behind `getAccessToken` and `invalidate`: module state, so a warm
 * Lambda container keeps its tokens between invocations. Its LambdaClient is created on first use.
 */
const defaultClient = new TokenClient();

/** `TokenClient.getAccessToken` on the process-wide client. */
export function getAccessToken(connectionId: string, options?: GetAccessTokenOptions): Promise<AccessToken> {
  return defaultClient.getAccessToken(connectionId, options);
}

/** `TokenClient.invalidate` on the process-wide client: call it after a 401 from Exact. */
export function invalidate(connectionId: string): void {
  defaultClient.invalidate(connectionId);
}
