/*
 * TOTP step arithmetic, free of otplib: the timing relations (config-timing.ts) import these
 * constants into every function's bundle, and only fallback-login generates codes.
 */

/** RFC 6238 as authenticator apps use it, and Exact: SHA-1, 6 digits, 30 s steps from epoch 0. */
export const TOTP_PERIOD_MS = 30_000;

/** After waiting for a new step, use it this far in, so a clock a little behind Exact's still agrees. */
export const TOTP_STEP_START_MARGIN_MS = 1_000;

/**
 * A code generated closer than this to the end of its step may reach Exact in the next step,
 * where a strict verifier (accepting the current step only) refuses it, and each refusal counts
 * towards the lock. Waiting for the next step costs at most this plus the start margin.
 */
export const TOTP_STEP_END_MARGIN_MS = 2_000;

/** The TOTP step at `epochMs`: floor(epochSeconds / 30). */
export function totpStepAt(epochMs: number): number {
  return Math.floor(epochMs / TOTP_PERIOD_MS);
}

/**
 * How long to wait at `nowMs` before generating a code: 0, or until just after the start of the
 * next usable step. A step at or before `lastTotpStep` is never used again (Exact refuses a
 * code used twice, and a refusal counts towards the lock), nor one about to end.
 */
export function totpWaitMs(nowMs: number, lastTotpStep: number | undefined): number {
  const current = totpStepAt(nowMs);
  let target = current;
  if (lastTotpStep !== undefined && current <= lastTotpStep) {
    target = lastTotpStep + 1;
  } else if ((current + 1) * TOTP_PERIOD_MS - nowMs < TOTP_STEP_END_MARGIN_MS) {
    target = current + 1;
  }
  return target === current ? 0 : target * TOTP_PERIOD_MS + TOTP_STEP_START_MARGIN_MS - nowMs;
}
