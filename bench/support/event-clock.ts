/**
 * A discrete-event clock for the benches that run the local stack (dynalite + the simulator over
 * real HTTP) on virtual time: bench/outage-pacing.ts and bench/scale.ts.
 */

interface Timer {
  readonly atMs: number;
  readonly seq: number;
  readonly fire: () => void;
}

/** Earlier first; of two at the same moment, the one scheduled first. */
function before(a: Timer, b: Timer): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

/** A binary min-heap of timers: a bench holds thousands of them (one per flow asleep). */
class TimerHeap {
  readonly #items: Timer[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): Timer | undefined {
    return this.#items[0];
  }

  push(timer: Timer): void {
    const items = this.#items;
    items.push(timer);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const up = items[parent] as Timer;
      if (!before(timer, up)) break;
      items[i] = up;
      i = parent;
    }
    items[i] = timer;
  }

  pop(): Timer | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child =
        right < items.length && before(items[right] as Timer, items[left] as Timer) ? right : left;
      if (!before(items[child] as Timer, last)) break;
      items[i] = items[child] as Timer;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

/**
 * A discrete-event clock. `sleep` waits for virtual time; `track` marks real I/O in flight. Time
 * moves (to the next timer) only when no tracked call is in flight and every flow has settled,
 * so flows see each other as they would at real speed, only without the waiting.
 *
 * Modelled latency: `track(call, latencyMs)` runs the real call at once (its effect lands at the
 * virtual moment it was made) and hands its result (or error) back `latencyMs` later on the
 * virtual clock, as if the answer took that long to come back.
 */
export class EventClock {
  #nowMs: number;
  #seq = 0;
  #busy = 0;
  #activity = 0;
  /** Resolves the settle waiting for the last tracked call in flight to end. */
  #onIdle: (() => void) | undefined;
  readonly #timers = new TimerHeap();

  constructor(startMs: number) {
    this.#nowMs = startMs;
  }

  readonly now = (): number => this.#nowMs;

  readonly sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => this.#at(this.#nowMs + Math.max(0, ms), resolve));

  readonly sleepUntil = (atMs: number): Promise<void> => this.sleep(atMs - this.#nowMs);

  /** Timers waiting. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Runs `fire` at `atMs` (before flows that wake at the same moment but were scheduled later). */
  at(atMs: number, fire: () => void): void {
    this.#at(atMs, fire);
  }

  readonly track = <T>(call: () => Promise<T>, latencyMs = 0): Promise<T> =>
    latencyMs > 0 ? this.#trackDelayed(call, latencyMs) : this.#trackNow(call);

  async #trackNow<T>(call: () => Promise<T>): Promise<T> {
    this.#busy += 1;
    this.#activity += 1;
    try {
      return await call();
    } finally {
      this.#busy -= 1;
      this.#activity += 1;
      if (this.#busy === 0) this.#onIdle?.();
    }
  }

  async #trackDelayed<T>(call: () => Promise<T>, latencyMs: number): Promise<T> {
    let outcome: { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };
    try {
      outcome = { ok: true, value: await this.#trackNow(call) };
    } catch (error) {
      outcome = { ok: false, error };
    }
    await this.sleep(latencyMs);
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  /**
   * Moves time forward event by event until `untilMs`, or until `stop` holds once everything has
   * settled. `together`: every timer due at the same moment fires before the clock settles, so
   * flows woken at one virtual moment run their I/O concurrently (a bench at scale); without it,
   * each fires and settles on its own, in order.
   */
  async runUntil(
    untilMs: number,
    stop: () => boolean = () => false,
    options: { readonly together?: boolean } = {},
  ): Promise<void> {
    for (;;) {
      await this.#settle();
      if (stop()) return;
      const next = this.#timers.peek();
      if (!next || next.atMs > untilMs) break;
      this.#timers.pop();
      if (next.atMs > this.#nowMs) this.#nowMs = next.atMs;
      next.fire();
      if (options.together) {
        for (let more = this.#timers.peek(); more && more.atMs === next.atMs; more = this.#timers.peek()) {
          this.#timers.pop();
          more.fire();
        }
      }
    }
    if (untilMs > this.#nowMs) this.#nowMs = untilMs;
    await this.#settle();
  }

  #at(atMs: number, fire: () => void): void {
    this.#activity += 1;
    this.#timers.push({ atMs, seq: this.#seq++, fire });
  }

  /**
   * Until no tracked call is in flight and a full turn of the event loop changed nothing. While
   * calls are in flight it waits for the last to end rather than spinning on the event loop.
   */
  async #settle(): Promise<void> {
    for (;;) {
      if (this.#busy > 0) {
        await new Promise<void>((resolve) => {
          this.#onIdle = resolve;
        });
        this.#onIdle = undefined;
      }
      const seen = this.#activity;
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      if (this.#busy === 0 && this.#activity === seen) return;
    }
  }
}
