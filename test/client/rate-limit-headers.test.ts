import { describe, expect, it } from "vitest";
import {
  DEFAULT_THROTTLE_SECONDS,
  parseRateLimitHeaders,
  throttledForSeconds,
} from "../../lib/client/rate-limit-headers.js";

const NOW = Date.parse("2026-11-26T10:04:30.000Z");
const MINUTE_END = Date.parse("2026-11-26T10:05:00.000Z");
const DAY_END = Date.parse("2026-11-27T00:00:00.000Z");

describe("parseRateLimitHeaders", () => {
  it("reads all six of a 200 (resets as epoch ms)", () => {
    const headers = new Headers({
      "X-RateLimit-Limit": "5000",
      "X-RateLimit-Remaining": "4321",
      "X-RateLimit-Reset": String(DAY_END),
      "X-RateLimit-Minutely-Limit": "60",
      "X-RateLimit-Minutely-Remaining": "59",
      "X-RateLimit-Minutely-Reset": String(MINUTE_END),
    });

    expect(parseRateLimitHeaders(headers, 200)).toStrictEqual({
      rateLimited: false,
      minutelyRemaining: 59,
      minutelyResetAtMs: MINUTE_END,
      dailyRemaining: 4321,
      dailyResetAtMs: DAY_END,
    });
  });

  it("reads a 429 with only the minutely headers (Exact's answer when the minute is spent)", () => {
    const headers = new Headers({
      "x-ratelimit-minutely-limit": "60",
      "x-ratelimit-minutely-remaining": "0",
      "x-ratelimit-minutely-reset": String(MINUTE_END),
    });

    expect(parseRateLimitHeaders(headers, 429)).toStrictEqual({
      rateLimited: true,
      minutelyRemaining: 0,
      minutelyResetAtMs: MINUTE_END,
    });
  });

  it.each(["", "-1", "1.5", "soon", "1e3", "12345678901234567"])(
    "leaves out a malformed value %j",
    (value) => {
      const headers = new Headers({ "X-RateLimit-Remaining": value, "X-RateLimit-Minutely-Remaining": "3" });

      expect(parseRateLimitHeaders(headers, 200)).toStrictEqual({ rateLimited: false, minutelyRemaining: 3 });
    },
  );
});

describe("throttledForSeconds", () => {
  it("waits for the day's reset when the day's budget is spent", () => {
    const observation = parseRateLimitHeaders(
      new Headers({
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": String(DAY_END),
        "X-RateLimit-Minutely-Remaining": "12",
        "X-RateLimit-Minutely-Reset": String(MINUTE_END),
      }),
      429,
    );

    expect(throttledForSeconds(observation, NOW)).toBe((DAY_END - NOW) / 1000);
  });

  it("waits for the minute's reset otherwise, rounded up", () => {
    const observation = { rateLimited: true, minutelyRemaining: 0, minutelyResetAtMs: MINUTE_END };

    expect(throttledForSeconds(observation, NOW + 200)).toBe(30);
  });

  it("waits a minute when Exact names no reset, and at least a second when the reset has passed", () => {
    expect(throttledForSeconds({ rateLimited: true }, NOW)).toBe(DEFAULT_THROTTLE_SECONDS);
    expect(throttledForSeconds({ rateLimited: true, minutelyResetAtMs: NOW - 5_000 }, NOW)).toBe(1);
  });
});
