/**
 * The simulator's clock: a base clock (real time by default) plus an offset that only moves
 * forward, and only when asked (control API or `Simulator.advanceClock`). Tests in the same
 * process skip minutes of Exact's lifetimes without sleeping; a broker in another process
 * shares real time, so cross-process tests use short lifetimes instead of shifts.
 */
export class SimClock {
  private offsetMs = 0;

  constructor(private readonly baseNowMs: () => number) {}

  /** Sim time in epoch milliseconds. */
  nowMs(): number {
    return this.baseNowMs() + this.offsetMs;
  }

  /** Moves sim time forward; callers validate that `seconds` is finite and not negative. */
  advance(seconds: number): number {
    this.offsetMs += seconds * 1000;
    return this.nowMs();
  }

  /** Back to the base clock, as at start. */
  reset(): void {
    this.offsetMs = 0;
  }
}

/**
 * Formats a time the way Exact writes it in error descriptions, e.g. `11/3/2021 2:50:46 PM`
 * (US order, 12-hour clock, no leading zero on month, day and hour). Exact does not say which
 * zone it uses; the simulator writes UTC.
 */
export function formatExactDateTime(epochMs: number): string {
  const date = new Date(epochMs);
  const hours24 = date.getUTCHours();
  const hours12 = hours24 % 12 === 0 ? 12 : hours24 % 12;
  const twoDigits = (n: number): string => String(n).padStart(2, "0");
  const day = `${date.getUTCMonth() + 1}/${date.getUTCDate()}/${date.getUTCFullYear()}`;
  const time = `${hours12}:${twoDigits(date.getUTCMinutes())}:${twoDigits(date.getUTCSeconds())}`;
  return `${day} ${time} ${hours24 < 12 ? "AM" : "PM"}`;
}
