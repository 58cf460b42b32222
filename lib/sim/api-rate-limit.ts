import { ApiOutcome } from "./stats.js";
import { dayEndMs } from "./token-cap.js";

/**
 * Exact's API rate limits: "60 calls per minute and 5,000 per day, per app and per division".
 * The simulator's reading:
 *
 * - the key is (client ID, division); every user of an app shares the app's budget in a division;
 * - windows are fixed, not rolling: the minute is the clock minute of sim time (10:04:00.000 to
 *   10:04:59.999), the day the UTC calendar day ("after midnight the count resets");
 * - a call is charged once the token and the division passed; refused calls (429) are not charged;
 * - resets are the ends of the windows in epoch milliseconds, as Exact sends them.
 */
export interface ApiLimits {
  callsPerMinute: number;
  callsPerDay: number;
}

const MINUTE_MS = 60 * 1000;
const DAY_MS = 24 * 60 * MINUTE_MS;

/** Whether a call may go on, and the `X-RateLimit-*` headers its answer carries either way. */
export type ApiCharge =
  | { allowed: true; headers: Record<string, string> }
  | {
      allowed: false;
      outcome: typeof ApiOutcome.minutelyLimited | typeof ApiOutcome.dailyLimited;
      headers: Record<string, string>;
    };

interface Usage {
  minute: number;
  minuteCalls: number;
  day: number;
  dayCalls: number;
}

export class ApiRateLimiter {
  private readonly usage = new Map<string, Usage>();

  constructor(private readonly limits: ApiLimits) {}

  /** Charges one call to `key` if its budgets allow it. */
  charge(key: string, nowMs: number): ApiCharge {
    const { callsPerMinute, callsPerDay } = this.limits;
    const usage = this.usageAt(key, nowMs);
    const minutely = (remaining: number): Record<string, string> => ({
      "X-RateLimit-Minutely-Limit": String(callsPerMinute),
      "X-RateLimit-Minutely-Remaining": String(remaining),
      "X-RateLimit-Minutely-Reset": String((usage.minute + 1) * MINUTE_MS),
    });
    const daily = (remaining: number): Record<string, string> => ({
      "X-RateLimit-Limit": String(callsPerDay),
      "X-RateLimit-Remaining": String(remaining),
      "X-RateLimit-Reset": String(dayEndMs(nowMs)),
    });
    if (usage.dayCalls >= callsPerDay) {
      return {
        allowed: false,
        outcome: ApiOutcome.dailyLimited,
        headers: { ...daily(0), ...minutely(Math.max(0, callsPerMinute - usage.minuteCalls)) },
      };
    }
    if (usage.minuteCalls >= callsPerMinute) {
      // Exact: "when the minutely budget is gone only the minutely headers are sent".
      return { allowed: false, outcome: ApiOutcome.minutelyLimited, headers: minutely(0) };
    }
    usage.minuteCalls += 1;
    usage.dayCalls += 1;
    return {
      allowed: true,
      headers: { ...daily(callsPerDay - usage.dayCalls), ...minutely(callsPerMinute - usage.minuteCalls) },
    };
  }

  /** The key's usage with windows that ended started afresh. */
  private usageAt(key: string, nowMs: number): Usage {
    const minute = Math.floor(nowMs / MINUTE_MS);
    const day = Math.floor(nowMs / DAY_MS);
    let usage = this.usage.get(key);
    if (usage === undefined) {
      usage = { minute, minuteCalls: 0, day, dayCalls: 0 };
      this.usage.set(key, usage);
    }
    if (usage.minute !== minute) {
      usage.minute = minute;
      usage.minuteCalls = 0;
    }
    if (usage.day !== day) {
      usage.day = day;
      usage.dayCalls = 0;
    }
    return usage;
  }
}
