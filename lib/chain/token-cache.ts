/** What token-vend answers; also what the warm-container cache holds. */
export interface VendAnswer {
  readonly accessToken: string;
  readonly tokenType: "Bearer";
  /** ISO 8601. */
  readonly expiresAt: string;
  readonly generation: number;
  readonly baseUrl: string;
  readonly division: number | null;
}

/**
 * Access tokens this container already holds. A vend answered from here touches nothing else:
 * no DynamoDB call, no decrypt (the warm-container path).
 */
export class TokenCache {
  readonly #entries = new Map<string, { readonly answer: VendAnswer; readonly expiresAtMs: number }>();

  /** The cached answer if it is still valid for at least `minValidityMs` (and at least 1 ms). */
  get(connectionId: string, minValidityMs: number, nowMs: number): VendAnswer | undefined {
    const entry = this.#entries.get(connectionId);
    return entry && entry.expiresAtMs - nowMs >= Math.max(1, minValidityMs) ? entry.answer : undefined;
  }

  put(connectionId: string, answer: VendAnswer, expiresAtMs: number): void {
    const current = this.#entries.get(connectionId);
    if (!current || current.answer.generation <= answer.generation)
      this.#entries.set(connectionId, { answer, expiresAtMs });
  }

  delete(connectionId: string): void {
    this.#entries.delete(connectionId);
  }
}
