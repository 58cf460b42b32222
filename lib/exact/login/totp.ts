import { createGuardrails, generate } from "otplib";

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

// The usual 16-character authenticator secret is 10 bytes; otplib refuses under 16 by default.
const GUARDRAILS = createGuardrails({ MIN_SECRET_BYTES: 10 });

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

/** Secrets as people copy them: `jbsw y3dp ehpk 3pxp`, with dashes, or with `=` padding. */
export function normalizeTotpSecret(secret: string): string {
  return secret.replace(/[\s-]/g, "").replace(/=+$/, "").toUpperCase();
}

/**
 * The 6-digit code for `step`. Throws otplib's error for an unusable secret; its message may
 * quote the secret's characters, so callers must not pass it on.
 */
export async function totpCodeForStep(secret: string, step: number): Promise<string> {
  return generate({
    secret: normalizeTotpSecret(secret),
    epoch: step * (TOTP_PERIOD_MS / 1000),
    guardrails: GUARDRAILS,
  });
}
