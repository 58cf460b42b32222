/** What token-vend answers; also what the warm-container cache holds. */
export interface VendAnswer {
  readonly accessToken: string;
  readonly tokenType: "Bearer";
  /** ISO 8601. */
  readonly expiresAt: string;
  /**
   * Whole seconds of validity the token had when this answer was made (rounded down, so never
   * more than it has): a consumer counts its expiry from when it received the answer, on its own
   * clock, whatever that clock says of `expiresAt`.
   */
  readonly expiresInSeconds: number;
  readonly generation: number;
  readonly baseUrl: string;
  readonly division: number | null;
  /**
   * The connection's Exact app (OAuth client ID; not a secret): Exact's REST API limits are per
   * app and division, so consumers key a shared rate budget by it.
   */
  readonly clientId: string;
}

/** `answer` as made at `nowMs`: its `expiresInSeconds` counted from then. */
export function answeredAt(answer: Omit<VendAnswer, "expiresInSeconds">, nowMs: number): VendAnswer {
  const expiresInSeconds = Math.max(0, Math.floor((Date.parse(answer.expiresAt) - nowMs) / 1000));
  return { ...answer, expiresInSeconds };
}

/**
 * How long a container answers from memory before it reads the item again (ms). Bounds how long
 * a warm container can go on serving the token of a connection that an operator removed (or
 * removed and added again, perhaps for another Exact user): at most this, not the token's whole
 * life. Costs at most one read a minute per connection and container.
 */
export const MAX_CACHE_AGE_MS = 60_000;

interface Entry {
  readonly answer: VendAnswer;
  readonly expiresAtMs: number;
  readonly incarnation: string | undefined;
  readonly cachedAtMs: number;
}

/**
 * Access tokens this container already holds. A vend answered from here touches nothing else:
 * no DynamoDB call, no decrypt (the warm-container path).
 */
export class TokenCache {
  readonly #entries = new Map<string, Entry>();

  /**
   * The cached answer if it is still valid for at least `minValidityMs` (and at least 1 ms) and
   * fresh enough, with `expiresInSeconds` counted from `nowMs` (the answer's time, not the cache's).
   */
  get(connectionId: string, minValidityMs: number, nowMs: number): VendAnswer | undefined {
    const entry = this.#entries.get(connectionId);
    if (!entry || nowMs - entry.cachedAtMs >= MAX_CACHE_AGE_MS) return undefined;
    return entry.expiresAtMs - nowMs >= Math.max(1, minValidityMs)
      ? answeredAt(entry.answer, nowMs)
      : undefined;
  }

  /**
   * Forgets the cached answer if it is of `generation` or older: a consumer reported Exact
   * refused that generation's token, so this container must not serve it from memory again.
   */
  forget(connectionId: string, generation: number): void {
    const entry = this.#entries.get(connectionId);
    if (entry && entry.answer.generation <= generation) this.#entries.delete(connectionId);
  }

  /**
   * Keeps `answer` unless a newer generation of the same incarnation is cached already (a
   * concurrent vend finished later with an older read); another incarnation always replaces it.
   */
  put(
    connectionId: string,
    answer: VendAnswer,
    expiresAtMs: number,
    incarnation: string | undefined,
    nowMs: number,
  ): void {
    const current = this.#entries.get(connectionId);
    if (current && current.incarnation === incarnation && current.answer.generation > answer.generation)
      return;
    this.#entries.set(connectionId, { answer, expiresAtMs, incarnation, cachedAtMs: nowMs });
  }
}
