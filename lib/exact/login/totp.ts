import { createGuardrails, generate } from "otplib";
import { TOTP_PERIOD_MS } from "./totp-steps.js";

// The usual 16-character authenticator secret is 10 bytes; otplib refuses under 16 by default.
const GUARDRAILS = createGuardrails({ MIN_SECRET_BYTES: 10 });

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
