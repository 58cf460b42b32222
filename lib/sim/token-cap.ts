/**
 * Exact announced "at most 200 token-endpoint calls per app, user and day" for July 2021;
 * whether and how it is enforced is unconfirmed. The simulator's reading, used by the
 * `dailyTokenCap` variant:
 *
 * - the key is the (client ID, user) pair of the request, as the stats key it;
 * - a call is a token request that passes the client check (rules 1 to 6 of the token endpoint),
 *   whatever the grant then answers, counted whether the variant is on or not;
 * - the day is the UTC calendar day of sim time, a fixed window, so a test knows when it ends;
 * - refused calls do not count: the first N calls of a day are served, every later one refused.
 */
const DAY_MS = 24 * 60 * 60 * 1000;

interface DayCount {
  day: number;
  calls: number;
}

/** The end of the UTC day of `nowMs`, in epoch ms. */
export function dayEndMs(nowMs: number): number {
  return (Math.floor(nowMs / DAY_MS) + 1) * DAY_MS;
}

export class DailyTokenCalls {
  private readonly counts = new Map<string, DayCount>();

  /** Calls counted for `key` so far in the UTC day of `nowMs`. */
  callsToday(key: string, nowMs: number): number {
    const count = this.counts.get(key);
    return count?.day === Math.floor(nowMs / DAY_MS) ? count.calls : 0;
  }

  record(key: string, nowMs: number): void {
    const day = Math.floor(nowMs / DAY_MS);
    const count = this.counts.get(key);
    if (count?.day === day) {
      count.calls += 1;
    } else {
      this.counts.set(key, { day, calls: 1 });
    }
  }
}
