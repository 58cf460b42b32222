import type { Endpoint } from "./faults.js";

/** Outcomes shared by both Exact-facing endpoints: blocked by the error limit, or hit by a fault. */
const SHARED_OUTCOMES = {
  errorLimited: "error_limited",
  faultStatus: "fault_status",
  faultRateLimit: "fault_rate_limit",
  faultReset: "fault_reset",
  faultRotateThenDrop: "fault_rotate_then_drop",
} as const;

/**
 * One outcome per token request. `old_token` is a refresh token rotated away inside the current
 * chain, `superseded` one of a chain replaced by a new authorization; `invalid_grant` covers bad
 * codes and unknown refresh tokens.
 */
export const TokenOutcome = {
  codeExchanged: "code_exchanged",
  refreshed: "refreshed",
  tooEarly: "too_early",
  oldToken: "old_token",
  superseded: "superseded",
  expired: "expired",
  invalidClient: "invalid_client",
  invalidRequest: "invalid_request",
  invalidGrant: "invalid_grant",
  ...SHARED_OUTCOMES,
} as const;
export type TokenOutcome = (typeof TokenOutcome)[keyof typeof TokenOutcome];

export const MeOutcome = {
  ok: "ok",
  unauthorized: "unauthorized",
  ...SHARED_OUTCOMES,
} as const;
export type MeOutcome = (typeof MeOutcome)[keyof typeof MeOutcome];

export interface OutcomeByEndpoint {
  token: TokenOutcome;
  me: MeOutcome;
}

/** Token-request counters; `issued` is `code_exchanged` + `refreshed`. */
export type TokenRequestCounts = Record<TokenOutcome | "issued", number>;
export type MeRequestCounts = Record<MeOutcome, number>;

export interface ChainStats {
  /** Generation of the pair's current chain; 0 before the first code exchange. */
  generation: number;
  chainsStarted: number;
  tokenRequests: TokenRequestCounts;
  meRequests: MeRequestCounts;
}

/** `GET /_sim/stats`. `chains` is keyed `clientId/username`. */
export interface SimulatorStats {
  chains: Record<string, ChainStats>;
  totals: { tokenRequests: TokenRequestCounts; meRequests: MeRequestCounts; chainsStarted: number };
}

export interface PairSummary {
  key: string;
  generation: number;
  chainsStarted: number;
}

interface Counters {
  token: TokenRequestCounts;
  me: MeRequestCounts;
}

function zeroCounters(): Counters {
  const zeros = <K extends string>(keys: K[]): Record<K, number> =>
    Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
  return {
    token: zeros(["issued", ...Object.values(TokenOutcome)]),
    me: zeros(Object.values(MeOutcome)),
  };
}

/**
 * Counts every request to the Exact-facing endpoints by outcome, per pair and in total. A
 * request whose app or user is unknown (a garbage token, a missing client_id) has no pair and
 * is counted in the totals only.
 */
export class StatsRecorder {
  private readonly totals = zeroCounters();
  private readonly perPair = new Map<string, Counters>();

  record<E extends Endpoint>(endpoint: E, outcome: OutcomeByEndpoint[E], pairKey: string | undefined): void {
    const targets = [this.totals];
    if (pairKey !== undefined) {
      targets.push(this.countersOf(pairKey));
    }
    for (const counters of targets) {
      const counts: Record<string, number> = counters[endpoint];
      counts[outcome] = (counts[outcome] ?? 0) + 1;
      if (outcome === TokenOutcome.codeExchanged || outcome === TokenOutcome.refreshed) {
        counts.issued = (counts.issued ?? 0) + 1;
      }
    }
  }

  view(pairs: Iterable<PairSummary>): SimulatorStats {
    const chains: Record<string, ChainStats> = {};
    let chainsStarted = 0;
    for (const pair of pairs) {
      const counters = this.countersOf(pair.key);
      chains[pair.key] = {
        generation: pair.generation,
        chainsStarted: pair.chainsStarted,
        tokenRequests: { ...counters.token },
        meRequests: { ...counters.me },
      };
      chainsStarted += pair.chainsStarted;
    }
    return {
      chains,
      totals: { tokenRequests: { ...this.totals.token }, meRequests: { ...this.totals.me }, chainsStarted },
    };
  }

  private countersOf(pairKey: string): Counters {
    let counters = this.perPair.get(pairKey);
    if (counters === undefined) {
      counters = zeroCounters();
      this.perPair.set(pairKey, counters);
    }
    return counters;
  }
}
