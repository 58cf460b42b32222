import { Duration } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import { DEFAULT_HISTORY_DAYS, loadConfig } from "../../lib/config.js";
import { ConfigurationError } from "../../lib/errors.js";
import { FunctionName } from "../../lib/infra/bundling.js";
import { EngineSettings, timingEnvironment } from "../../lib/infra/function-settings.js";

describe("HISTORY_DAYS", () => {
  it("keeps history 90 days unless set", () => {
    expect(loadConfig({ TABLE_NAME: "chains" }).historyDays).toBe(DEFAULT_HISTORY_DAYS);
    expect(DEFAULT_HISTORY_DAYS).toBe(90);
    expect(loadConfig({ TABLE_NAME: "chains", HISTORY_DAYS: "7" }).historyDays).toBe(7);
  });

  it.each([["0"], ["3651"], ["1.5"], ["a week"]])(
    "refuses HISTORY_DAYS=%j at start, naming the setting",
    (raw) => {
      expect(() => loadConfig({ TABLE_NAME: "chains", HISTORY_DAYS: raw })).toThrow(ConfigurationError);
      expect(() => loadConfig({ TABLE_NAME: "chains", HISTORY_DAYS: raw })).toThrow(
        /HISTORY_DAYS must be an integer from 1 to 3650/,
      );
    },
  );

  it("is in every function's environment: the default, or the stack's engineSettings.historyDays", () => {
    const timeout = Duration.seconds(25);

    const byDefault = timingEnvironment(FunctionName.TokenVend, EngineSettings, timeout);
    const chosen = timingEnvironment(
      FunctionName.Refresh,
      { ...EngineSettings, historyDays: 30 },
      Duration.seconds(85),
    );

    expect(byDefault.HISTORY_DAYS).toBe("90");
    expect(chosen.HISTORY_DAYS).toBe("30");
    expect(loadConfig({ TABLE_NAME: "chains", ...chosen }).historyDays).toBe(30);
  });

  it("fails synthesis for a retention the functions would refuse", () => {
    expect(() =>
      timingEnvironment(FunctionName.TokenVend, { ...EngineSettings, historyDays: 0 }, Duration.seconds(25)),
    ).toThrow(/historyDays must be an integer from 1 to 3650, got 0/);
  });
});
