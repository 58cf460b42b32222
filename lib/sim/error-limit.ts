/**
 * Exact's error limit: "no more than 10 errors per app, user, company and endpoint per hour;
 * past that the app is blocked for an hour". The simulator's reading of it:
 *
 * - the key is (client ID, user ID, endpoint); company is left out because the token endpoint
 *   knows no division, and `-` stands for a client or user that cannot be told from the request;
 * - the window is the clock hour of sim time (10:00:00 to 10:59:59.999), not a sliding hour,
 *   so a test can tell exactly when the block ends;
 * - once 10 errors were counted in the current hour, every further request for the key is
 *   blocked until the hour ends, valid ones included.
 */
export const ERRORS_PER_HOUR = 10;

const HOUR_MS = 60 * 60 * 1000;

interface HourCount {
  hour: number;
  errors: number;
}

export class ErrorLimiter {
  private readonly counts = new Map<string, HourCount>();

  /** End of the block (epoch ms) when `key` is blocked now, else undefined. */
  blockedUntilMs(key: string, nowMs: number): number | undefined {
    const hour = Math.floor(nowMs / HOUR_MS);
    const count = this.counts.get(key);
    return count?.hour === hour && count.errors >= ERRORS_PER_HOUR ? (hour + 1) * HOUR_MS : undefined;
  }

  recordError(key: string, nowMs: number): void {
    const hour = Math.floor(nowMs / HOUR_MS);
    const count = this.counts.get(key);
    if (count?.hour === hour) {
      count.errors += 1;
    } else {
      this.counts.set(key, { hour, errors: 1 });
    }
  }
}

export function errorLimitKey(
  clientId: string | undefined,
  userId: string | undefined,
  endpoint: string,
): string {
  return JSON.stringify([clientId ?? "-", userId ?? "-", endpoint]);
}
