import type { IssuedTokens } from "../lib/exact/classify-token-response.js";
import type { ClientCredentials, ExactOAuthClient } from "../lib/exact/oauth-client.js";

/**
 * What several Data Hub nodes do with one seeded chain: each keeps its own copy of the tokens
 * and refreshes it when its access token runs low. The first to refresh wins; every other copy
 * now holds a rotated-away refresh token and is stranded until a person logs in again.
 */
export class NaiveConsumer {
  #tokens: { accessToken: string; refreshToken: string; expiresAtMs: number };
  stranded = false;

  constructor(
    private readonly oauth: ExactOAuthClient,
    private readonly baseUrl: string,
    private readonly creds: ClientCredentials,
    seed: Required<IssuedTokens>,
    seededAtMs: number,
  ) {
    this.#tokens = { ...seed, expiresAtMs: seededAtMs + seed.expiresInSeconds * 1000 };
  }

  /** An access token with `minValidityMs` left, refreshing its own copy of the chain if needed. */
  async vend(minValidityMs: number): Promise<string | undefined> {
    if (this.stranded) return undefined;
    if (this.#tokens.expiresAtMs - Date.now() >= minValidityMs) return this.#tokens.accessToken;
    const outcome = await this.oauth.refresh(this.baseUrl, this.creds, this.#tokens.refreshToken, 8_000);
    const { accessToken, refreshToken, expiresInSeconds } = outcome.kind === "tokens" ? outcome.rotated : {};
    if (accessToken && refreshToken && expiresInSeconds) {
      this.#tokens = { accessToken, refreshToken, expiresAtMs: Date.now() + expiresInSeconds * 1000 };
      return accessToken;
    }
    // A dead chain, or Exact's error limit blocking this app and user for the hour: either way
    // this copy gets no more tokens until a person logs in again.
    if (outcome.kind === "chain_dead" || outcome.kind === "rate_limited") this.stranded = true;
    return undefined;
  }
}
