import { DeadlineExceeded } from "./errors.js";

/**
 * How long an `exactFetch` (its vend, its wait for the rate budget, the call and its one retry)
 * or one page of `exactPages` may take when the caller gives no `deadlineMs`. A consumer Lambda
 * should pass its own: `Date.now() + context.getRemainingTimeInMillis() - margin`.
 */
export const DEFAULT_DEADLINE_MS = 30_000;

/** What bounds a wait: an epoch-ms deadline on the client's clock, and the caller's own signal. */
export interface WaitBounds {
  readonly deadlineMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * What `start` promises, unless the deadline passes (`DeadlineExceeded`) or the caller's signal
 * aborts (its `reason`) first. `start` is not called when either has happened already; what it
 * started runs on after the wait ends (it may be shared with other callers).
 */
export async function bounded<T>(
  start: () => Promise<T>,
  bounds: WaitBounds,
  now: () => number,
  what: string,
): Promise<T> {
  const { deadlineMs, signal } = bounds;
  if (deadlineMs === undefined && signal === undefined) return start();
  signal?.throwIfAborted();
  const leftMs = deadlineMs === undefined ? Number.POSITIVE_INFINITY : deadlineMs - now();
  if (leftMs <= 0) throw new DeadlineExceeded(`${what}: the deadline had passed`);
  const promise = start();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    if (Number.isFinite(leftMs))
      timer = setTimeout(() => reject(new DeadlineExceeded(`${what}: the deadline passed`)), leftMs);
    onAbort = () => reject(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * A signal for one HTTP call that aborts at the deadline or with the caller's signal (after an
 * abort, `bounds.signal.aborted` tells that it was the caller's).
 */
export function callSignal(
  bounds: WaitBounds & { readonly deadlineMs: number },
  now: () => number,
): AbortSignal {
  const timeout = AbortSignal.timeout(Math.max(0, bounds.deadlineMs - now()));
  return bounds.signal ? AbortSignal.any([bounds.signal, timeout]) : timeout;
}
