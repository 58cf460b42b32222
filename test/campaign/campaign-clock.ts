/** Monday 5 January 2026, 09:00:00 UTC: a fixed start, so every run of the campaign is the same run. */
const START_MS = Date.UTC(2026, 0, 5, 9, 0, 0);

/** Exact's TOTP step (RFC 6238, 30 s; lib/exact/login/totp.ts). */
const TOTP_PERIOD_MS = 30_000;

/** Where in a TOTP step each case starts: far from both ends, so no login waits for a fresh step. */
const STEP_OFFSET_MS = 5_000;

/**
 * The one clock of a campaign file, shared by the brokers, dynalite's `Date` headers and the
 * simulator. Unlike test/support's TestClock it does not follow real time at all: it moves only
 * when a broker sleeps or the campaign advances it. A case then makes the same calls in the same
 * order however fast the machine is, which the enumeration (the clean run's k-th call is the
 * faulted run's k-th call) depends on.
 */
export class CampaignClock {
  #nowMs = START_MS;

  readonly now = (): number => this.#nowMs;

  readonly sleep = async (ms: number): Promise<void> => {
    this.#nowMs += Math.max(0, ms);
    // Let other promises run, as a real sleep would.
    await new Promise((resolve) => setImmediate(resolve));
  };

  advanceMs(ms: number): void {
    this.#nowMs += Math.max(0, ms);
  }

  /** Moves the clock to `atMs` unless it is there already; it never goes back. */
  advanceTo(atMs: number): void {
    this.#nowMs = Math.max(this.#nowMs, atMs);
  }

  /** To 5 s into the next TOTP step, so each case's logins find a whole, unused step. */
  alignToTotpStep(): void {
    const stepStartMs = Math.floor(this.#nowMs / TOTP_PERIOD_MS) * TOTP_PERIOD_MS;
    this.#nowMs = stepStartMs + TOTP_PERIOD_MS + STEP_OFFSET_MS;
  }
}
