import { describe, expect, it } from "vitest";
import { loadConfig } from "../lib/config.js";
import {
  checkTiming,
  LOGIN_DRIVER_MIN_MS,
  loginDriverBudgetMs,
  type TimingSettings,
} from "../lib/config-timing.js";
import { ConfigurationError } from "../lib/errors.js";

const DEFAULT_TIMING = { leaseMs: 20_000, loginLeaseMs: 120_000, httpTimeoutMs: 8_000 } as const;

describe("loadConfig", () => {
  it("applies the documented defaults, which satisfy every timing relation", () => {
    expect(loadConfig({ TABLE_NAME: "chains" })).toEqual({
      tableName: "chains",
      refreshWindowSeconds: 30,
      refreshMarginMs: 1000,
      leaseMs: 20_000,
      loginLeaseMs: 120_000,
      httpTimeoutMs: 8_000,
      keepaliveDays: 25,
      allowLoopback: false,
      historyDays: 90,
    });
  });

  it("reads the function's timeout and name, set together by the stack", () => {
    const config = loadConfig({
      TABLE_NAME: "chains",
      FUNCTION_TIMEOUT_SECONDS: "25",
      BROKER_FUNCTION: "connect",
    });
    expect(config.functionTimeoutMs).toBe(25_000);
    expect(config.functionName).toBe("connect");
  });

  // Each row: the environment at the relation's boundary, the setting to lower by 1, and what
  // the refusal must say (settings, values, the reason, the smallest value that works).
  it.each([
    {
      relation: "lease ≥ http + headroom + skew",
      env: { LEASE_SECONDS: "13", HTTP_TIMEOUT_MS: "8000" },
      lower: "LEASE_SECONDS",
      reason:
        /LEASE_SECONDS \(12\) must be at least HTTP_TIMEOUT_MS \(8000\) .* = 13 s: a token call could outlive its lease.*raise LEASE_SECONDS to 13/,
    },
    {
      relation: "login lease ≥ driver + 2 × http + headroom + skew",
      env: { LOGIN_LEASE_SECONDS: "66", HTTP_TIMEOUT_MS: "8000" },
      lower: "LOGIN_LEASE_SECONDS",
      reason:
        /LOGIN_LEASE_SECONDS \(65\) must be at least 45 s for the login driver .* 2 × HTTP_TIMEOUT_MS \(8000\) .* = 66 s: a login could outlive its lease, and another invocation could start a second login; raise LOGIN_LEASE_SECONDS to 66/,
    },
    ...(["token-vend", "refresh", "connect"] as const).map((name) => ({
      relation: `${name}: timeout ≥ lease + margin`,
      env: { LEASE_SECONDS: "30", FUNCTION_TIMEOUT_SECONDS: "35", BROKER_FUNCTION: name },
      lower: "FUNCTION_TIMEOUT_SECONDS",
      reason: new RegExp(
        `FUNCTION_TIMEOUT_SECONDS \\(34\\) of ${name} must be at least LEASE_SECONDS \\(30\\) \\+ 5 s .* = 35 s: ` +
          "Lambda could kill the invocation while it holds the chain's lease.*raise the function's timeout to 35 s",
      ),
    })),
    {
      relation: "fallback-login: timeout ≥ login lease + margin",
      env: { LOGIN_LEASE_SECONDS: "90", FUNCTION_TIMEOUT_SECONDS: "95", BROKER_FUNCTION: "fallback-login" },
      lower: "FUNCTION_TIMEOUT_SECONDS",
      reason:
        /FUNCTION_TIMEOUT_SECONDS \(94\) of fallback-login must be at least LOGIN_LEASE_SECONDS \(90\) \+ 5 s .* = 95 s: .*losing the login's answer; raise the function's timeout to 95 s/,
    },
  ] as const)(
    "$relation: accepted at the boundary, refused 1 s below with the reason",
    ({ env, lower, reason }) => {
      const atBoundary = { TABLE_NAME: "chains", ...env } as Record<string, string>;
      expect(() => loadConfig(atBoundary)).not.toThrow();

      const below = { ...atBoundary, [lower]: String(Number(atBoundary[lower]) - 1) };
      expect(() => loadConfig(below)).toThrow(ConfigurationError);
      expect(() => loadConfig(below)).toThrow(reason);
    },
  );

  it.each([
    [{ FUNCTION_TIMEOUT_SECONDS: "25" }, /got only FUNCTION_TIMEOUT_SECONDS/],
    [{ BROKER_FUNCTION: "token-vend" }, /got only BROKER_FUNCTION/],
  ])("refuses %j without its partner", (env, reason) => {
    expect(() => loadConfig({ TABLE_NAME: "chains", ...env })).toThrow(ConfigurationError);
    expect(() => loadConfig({ TABLE_NAME: "chains", ...env })).toThrow(
      /FUNCTION_TIMEOUT_SECONDS and BROKER_FUNCTION go together/,
    );
    expect(() => loadConfig({ TABLE_NAME: "chains", ...env })).toThrow(reason);
  });

  it("refuses a BROKER_FUNCTION the broker does not have, naming the five it has", () => {
    expect(() =>
      loadConfig({ TABLE_NAME: "chains", FUNCTION_TIMEOUT_SECONDS: "25", BROKER_FUNCTION: "vend" }),
    ).toThrow(
      /BROKER_FUNCTION must be one of token-vend, refresh, refresh-worker, fallback-login, connect .*got "vend"/,
    );
  });

  it.each([
    [{ TABLE_NAME: "" }],
    [{ TABLE_NAME: "chains", REFRESH_WINDOW_SECONDS: "soon" }],
    [{ TABLE_NAME: "chains", KEEPALIVE_DAYS: "31" }],
    // Lambda's largest timeout is 900 s.
    [{ TABLE_NAME: "chains", FUNCTION_TIMEOUT_SECONDS: "901", BROKER_FUNCTION: "refresh" }],
  ])("refuses %j", (env) => {
    expect(() => loadConfig(env)).toThrow(ConfigurationError);
  });
});

describe("checkTiming", () => {
  const functionTiming = (functionName: "token-vend" | "fallback-login", functionTimeoutMs: number) => ({
    ...DEFAULT_TIMING,
    functionName,
    functionTimeoutMs,
  });

  // At the boundary in milliseconds; 1 ms less breaks the relation.
  it.each<{ relation: string; boundary: TimingSettings; below: TimingSettings; reason: RegExp }>([
    {
      relation: "lease ≥ http + headroom + skew",
      boundary: { ...DEFAULT_TIMING, leaseMs: 13_000 },
      below: { ...DEFAULT_TIMING, leaseMs: 12_999 },
      reason: /LEASE_SECONDS \(12\.999\)/,
    },
    {
      relation: "lease ≥ http + headroom + skew, by the HTTP timeout",
      boundary: { ...DEFAULT_TIMING, httpTimeoutMs: 15_000 },
      below: { ...DEFAULT_TIMING, httpTimeoutMs: 15_001 },
      reason: /LEASE_SECONDS \(20\) must be at least HTTP_TIMEOUT_MS \(15001\)/,
    },
    {
      relation: "login lease ≥ driver + 2 × http + headroom + skew",
      boundary: { ...DEFAULT_TIMING, loginLeaseMs: 66_000 },
      below: { ...DEFAULT_TIMING, loginLeaseMs: 65_999 },
      reason: /LOGIN_LEASE_SECONDS \(65\.999\)/,
    },
    {
      relation: "login lease ≥ driver + 2 × http + headroom + skew, by the HTTP timeout",
      // A lease long enough that only the login relation binds.
      boundary: { ...DEFAULT_TIMING, leaseMs: 41_000, httpTimeoutMs: 35_000 },
      below: { ...DEFAULT_TIMING, leaseMs: 41_000, httpTimeoutMs: 35_001 },
      reason: /LOGIN_LEASE_SECONDS \(120\) must be at least .*HTTP_TIMEOUT_MS \(35001\)/,
    },
    {
      relation: "a door's timeout ≥ lease + margin",
      boundary: functionTiming("token-vend", 25_000),
      below: functionTiming("token-vend", 24_999),
      reason: /FUNCTION_TIMEOUT_SECONDS \(24\.999\) of token-vend/,
    },
    {
      relation: "fallback-login's timeout ≥ login lease + margin",
      boundary: functionTiming("fallback-login", 125_000),
      below: functionTiming("fallback-login", 124_999),
      reason: /FUNCTION_TIMEOUT_SECONDS \(124\.999\) of fallback-login/,
    },
  ])("$relation: accepted at the boundary, refused 1 ms below", ({ boundary, below, reason }) => {
    expect(() => checkTiming(boundary)).not.toThrow();
    expect(() => checkTiming(below)).toThrow(ConfigurationError);
    expect(() => checkTiming(below)).toThrow(reason);
  });

  it("holds fallback-login to the login lease, not the token lease", () => {
    // 25 s is enough for a door, far too little for a login.
    expect(() => checkTiming(functionTiming("fallback-login", 25_000))).toThrow(
      /LOGIN_LEASE_SECONDS \(120\)/,
    );
  });
});

describe("loginDriverBudgetMs", () => {
  it("leaves the driver the login lease minus the exchange, the identity check, headroom and skew", () => {
    expect(loginDriverBudgetMs(DEFAULT_TIMING)).toBe(120_000 - 2 * 8_000 - 2_000 - 3_000);
  });

  it("is exactly the driver's minimum (45 s) at the login lease's boundary", () => {
    expect(LOGIN_DRIVER_MIN_MS).toBe(45_000);
    expect(loginDriverBudgetMs({ loginLeaseMs: 66_000, httpTimeoutMs: 8_000 })).toBe(LOGIN_DRIVER_MIN_MS);
  });
});
