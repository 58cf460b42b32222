import { describe, expect, it } from "vitest";
import { loadConfig } from "../lib/config.js";
import { ConfigurationError } from "../lib/errors.js";

describe("loadConfig", () => {
  it("applies the documented defaults", () => {
    expect(loadConfig({ TABLE_NAME: "chains" })).toEqual({
      tableName: "chains",
      refreshWindowSeconds: 30,
      refreshMarginMs: 1000,
      leaseMs: 20_000,
      loginLeaseMs: 120_000,
      httpTimeoutMs: 8_000,
      keepaliveDays: 25,
      allowLoopback: false,
    });
  });

  it("refuses a lease that does not outlast the HTTP timeout by 2 s", () => {
    expect(() => loadConfig({ TABLE_NAME: "chains", LEASE_SECONDS: "9", HTTP_TIMEOUT_MS: "8000" })).toThrow(
      /must outlast HTTP_TIMEOUT_MS/,
    );
    expect(loadConfig({ TABLE_NAME: "chains", LEASE_SECONDS: "10", HTTP_TIMEOUT_MS: "8000" }).leaseMs).toBe(
      10_000,
    );
  });

  it.each([
    [{ TABLE_NAME: "" }],
    [{ TABLE_NAME: "chains", REFRESH_WINDOW_SECONDS: "soon" }],
    [{ TABLE_NAME: "chains", KEEPALIVE_DAYS: "31" }],
  ])("refuses %j", (env) => {
    expect(() => loadConfig(env)).toThrow(ConfigurationError);
  });
});
