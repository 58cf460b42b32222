import { createGuardrails, verify } from "otplib";

/**
 * Authenticator secrets are usually 16 base32 characters, 10 bytes; otplib 13 refuses secrets
 * under 16 bytes unless told otherwise. Shorter secrets still fail verification (see below).
 */
const GUARDRAILS = createGuardrails({ MIN_SECRET_BYTES: 10 });

const SIX_DIGITS = /^\d{6}$/;

/**
 * The RFC 6238 time step (30 s, SHA-1, 6 digits) whose code `code` is, checked at sim time, or
 * undefined when it is not the code of the CURRENT step. The simulator accepts no neighbouring
 * step: a client must compute its code right before posting it, and one that waits for the next
 * step to avoid reusing a code must not get away with a stale one.
 *
 * otplib throws on input it considers malformed (a secret under 10 bytes, say); such a code can
 * never be right, so it is "not a code" here rather than a 500.
 */
export async function totpStepOf(secret: string, code: string, nowMs: number): Promise<number | undefined> {
  if (!SIX_DIGITS.test(code)) {
    return undefined;
  }
  try {
    const result = await verify({
      secret,
      token: code,
      epoch: Math.floor(nowMs / 1000),
      epochTolerance: 0,
      guardrails: GUARDRAILS,
    });
    // `verify` also serves HOTP, whose result has no time step; a TOTP result always has one.
    return result.valid && "timeStep" in result ? result.timeStep : undefined;
  } catch {
    return undefined;
  }
}
