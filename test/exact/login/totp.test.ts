import { describe, expect, it } from "vitest";
import { normalizeTotpSecret, totpCodeForStep } from "../../../lib/exact/login/totp.js";
import { totpStepAt, totpWaitMs } from "../../../lib/exact/login/totp-steps.js";

// RFC 6238 appendix B, SHA-1 seed "12345678901234567890", last 6 of the 8 digits.
const RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

describe("totpCodeForStep", () => {
  it.each([
    [59, "287082"],
    [1111111109, "081804"],
    [1234567890, "005924"],
    [2000000000, "279037"],
  ])("matches RFC 6238 at T=%i", async (epochSeconds, code) => {
    await expect(totpCodeForStep(RFC_SECRET, Math.floor(epochSeconds / 30))).resolves.toBe(code);
  });

  it("accepts the usual 16-character (10-byte) authenticator secret, as typed by a person", async () => {
    const canonical = await totpCodeForStep("JBSWY3DPEHPK3PXP", 1);

    await expect(totpCodeForStep("jbsw y3dp-ehpk 3pxp", 1)).resolves.toBe(canonical);
    expect(canonical).toMatch(/^\d{6}$/);
  });

  it("rejects a secret under 10 bytes", async () => {
    await expect(totpCodeForStep("JBSWY3DP", 1)).rejects.toThrow();
  });
});

describe("normalizeTotpSecret", () => {
  it("drops spaces, dashes and padding, and upper-cases", () => {
    expect(normalizeTotpSecret(" hq24 ibw5-2neg on6q 4ajm 3hhh 5u====== ")).toBe(
      "HQ24IBW52NEGON6Q4AJM3HHH5U",
    );
  });
});

describe("totpWaitMs", () => {
  const step = 1000;
  const at = (offsetMs: number): number => step * 30_000 + offsetMs;

  it.each([
    ["no last step, mid-step", at(10_000), undefined, 0],
    ["last step is older", at(10_000), step - 1, 0],
    ["last step is the current one", at(10_000), step, 21_000],
    ["last step is ahead of the clock", at(10_000), step + 1, 51_000],
    ["under 2 s left in the step", at(28_500), undefined, 2_500],
    ["exactly 2 s left", at(28_000), undefined, 0],
    ["at the very start of an unused step", at(0), step - 1, 0],
  ])("%s", (_name, nowMs, lastTotpStep, expected) => {
    expect(totpWaitMs(nowMs, lastTotpStep)).toBe(expected);
  });

  it("never lands on the last step", () => {
    for (let offset = 0; offset < 30_000; offset += 250) {
      const nowMs = at(offset);
      expect(totpStepAt(nowMs + totpWaitMs(nowMs, step))).toBe(step + 1);
    }
  });
});
