import { Duration } from "aws-cdk-lib";
import { DEFAULT_HISTORY_DAYS, MAX_HISTORY_DAYS } from "../config.js";
import { checkTiming, FUNCTION_MARGIN_MS, WINDOW_WAIT_MS } from "../config-timing.js";
import { FunctionName } from "./bundling.js";

/**
 * The engine settings the stack deploys with (lib/config.ts reads them). They are set
 * explicitly in every function's environment, so the timeouts derived from them cannot drift
 * from what the engine does if lib/config.ts's defaults change.
 */
export interface EngineSettings {
  /** LEASE_SECONDS: how long a token call holds a chain (at least HTTP_TIMEOUT_MS + 5 s, config-timing.ts). */
  readonly leaseSeconds: number;
  /** HTTP_TIMEOUT_MS: one call to Exact's token endpoint or /current/Me is aborted after this. */
  readonly httpTimeoutMs: number;
  /**
   * LOGIN_LEASE_SECONDS: a login (a TOTP step wait, ~8 pages, the code exchange and /current/Me)
   * holds the chain this long (at least 45 s + 2 × HTTP_TIMEOUT_MS + 5 s, config-timing.ts).
   */
  readonly loginLeaseSeconds: number;
  /**
   * HISTORY_DAYS: how long each connection's history items are kept (DynamoDB TTL on the table's
   * `expiresAtEpochSec`), 1 to 3650 days.
   * @default 90 (lib/config.ts DEFAULT_HISTORY_DAYS)
   */
  readonly historyDays?: number;
}

/** The settings the stack deploys unless its `engineSettings` prop overrides them: lib/config.ts's defaults. */
export const EngineSettings: EngineSettings = {
  leaseSeconds: 20,
  httpTimeoutMs: 8_000,
  loginLeaseSeconds: 120,
  historyDays: DEFAULT_HISTORY_DAYS,
};

/**
 * The refresh-worker's SQS event source (the refresh queue's consumer).
 *
 * - `maxConcurrency`: 10 invocations of up to `batchSize` chains each, worked at once, refresh
 *   about 17,000 a minute at 350 ms each (a token call and its writes), against the 1,050 a
 *   minute that fall due at 10,000 hot connections; the lowest MaximumConcurrency SQS allows is 2.
 * - `maxBatchingWindowSeconds`: without a batching window Lambda invokes as soon as a poller
 *   holds any message, and messages become visible one by one as chains fall due, so most
 *   invocations would carry one chain: a run's fixed time and its SQS requests would be paid per
 *   chain. With 3 s, the five pollers Lambda keeps gather about 10 each at 10,000 hot
 *   connections (`npm run bench:scale` models them). A message waits at most 3 s more: Exact's
 *   window is 29 s, and a vend asking for 20 s of validity needs the refresh within its first 9.
 */
export const RefreshWorkerEventSource = {
  batchSize: 10,
  maxConcurrency: 10,
  maxBatchingWindowSeconds: 3,
} as const;

/**
 * How long the refresh-worker waits for a window that has not opened when its message arrives
 * (WINDOW_WAIT_MS, lib/config-timing.ts).
 */
const WINDOW_WAIT_SECONDS = WINDOW_WAIT_MS / 1000;
/**
 * The dispatcher's run: one Query page per few thousand due chains and a SendMessageBatch plus
 * ten claims per ten chains, eight batches in flight: about 1,050 chains a minute at 10,000
 * connections take a few seconds. It queues nothing it cannot claim before its deadline and
 * leaves the rest to the next tick.
 */
const DISPATCH_SECONDS = 60;
const MARGIN_SECONDS = FUNCTION_MARGIN_MS / 1000;

/**
 * Each function's timeout for the given settings, with its reason. The doors adapt to the
 * invocation's remaining time (design invariant 14), so a timeout needs room for the lease the
 * function holds plus FUNCTION_MARGIN_MS (5 s: cold start, secret, KMS, DynamoDB), and no more
 * unless the function has other work that must fit. The numbers below are for {@link EngineSettings}.
 */
export function functionTimeouts(settings: EngineSettings): Readonly<Record<FunctionName, Duration>> {
  return {
    // One lease for its own token call (20 s) + 5 s = 25 s. A vend that first waits for another
    // holder's generation stops waiting when too little time is left, and answers ChainBusy with
    // a retry time instead of starting a call it could not finish.
    [FunctionName.TokenVend]: Duration.seconds(settings.leaseSeconds + MARGIN_SECONDS),
    // The schedule's dispatch run (refresh-dispatch.ts): no lease, no token call, no sleep. The
    // engine still checks the leased rule at start (without a queue the same handler does the
    // work itself), so a lease above 55 s raises it rather than failing the synth.
    [FunctionName.Refresh]: Duration.seconds(
      Math.max(DISPATCH_SECONDS, settings.leaseSeconds + MARGIN_SECONDS),
    ),
    // A batch's chains at once: a window that has not opened yet (up to 30 s), then the refresh
    // inside its 20 s lease; + 5 s = 55 s. It starts no lease it cannot finish before its deadline.
    [FunctionName.RefreshWorker]: Duration.seconds(
      WINDOW_WAIT_SECONDS + settings.leaseSeconds + MARGIN_SECONDS,
    ),
    // A login, its code exchange and /current/Me all run under the 120 s login lease; + 5 s =
    // 125 s. The function outlives the lease, so a slow login ends in the engine's own
    // bookkeeping, not in a killed process.
    [FunctionName.FallbackLogin]: Duration.seconds(settings.loginLeaseSeconds + MARGIN_SECONDS),
    // The code exchange and /current/Me under one lease (20 s) + 5 s = 25 s.
    [FunctionName.Connect]: Duration.seconds(settings.leaseSeconds + MARGIN_SECONDS),
  };
}

/**
 * The history retention the functions are deployed with, checked as lib/config.ts checks it at
 * start, so a bad value fails `cdk synth` instead of every function's init.
 */
function historyDays(settings: EngineSettings): number {
  const days = settings.historyDays ?? DEFAULT_HISTORY_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_HISTORY_DAYS) {
    throw new Error(
      `engineSettings.historyDays must be an integer from 1 to ${MAX_HISTORY_DAYS}, got ${days}`,
    );
  }
  return days;
}

/**
 * The timing part of a function's environment (and HISTORY_DAYS): the engine settings, its timeout
 * (FUNCTION_TIMEOUT_SECONDS: Lambda does not expose it) and its name (BROKER_FUNCTION). Checks
 * them first with the timing relations the function checks at start (checkTiming), so settings
 * that break one fail `cdk synth` instead, with the reason; throws an Error naming the function.
 */
export function timingEnvironment(
  name: FunctionName,
  settings: EngineSettings,
  timeout: Duration,
): Record<string, string> {
  try {
    checkTiming({
      leaseMs: settings.leaseSeconds * 1000,
      loginLeaseMs: settings.loginLeaseSeconds * 1000,
      httpTimeoutMs: settings.httpTimeoutMs,
      functionTimeoutMs: timeout.toMilliseconds(),
      functionName: name,
    });
  } catch (error) {
    throw new Error(
      `exact-token-broker's ${name} function would refuse to start with the timing it is deployed with: ` +
        (error as Error).message,
      { cause: error },
    );
  }
  return {
    LEASE_SECONDS: String(settings.leaseSeconds),
    HTTP_TIMEOUT_MS: String(settings.httpTimeoutMs),
    LOGIN_LEASE_SECONDS: String(settings.loginLeaseSeconds),
    FUNCTION_TIMEOUT_SECONDS: String(timeout.toSeconds()),
    BROKER_FUNCTION: name,
    HISTORY_DAYS: String(historyDays(settings)),
  };
}

/**
 * Reserved concurrency where a cap is part of the design; token-vend has none (it is the hot
 * path: a cap would throttle consumers).
 */
export const ReservedConcurrency: Readonly<Partial<Record<FunctionName, number>>> = {
  // One dispatch run a minute takes seconds; two at once only when one is slow, and a third
  // would only queue again what the cursor says is queued. (The refresh-worker is bounded by its
  // queue's event source instead: MaxConcurrency, broker-functions.ts.)
  [FunctionName.Refresh]: 2,
  // Logins are budgeted against Exact's error limits (a few per hour per user); two at once is
  // plenty, and a duplicate trigger for the same chain finds the lease taken anyway.
  [FunctionName.FallbackLogin]: 2,
  // A public URL for a person clicking a link: a flood is throttled (429) instead of eating
  // the account's concurrency and the table's capacity.
  [FunctionName.Connect]: 2,
};

/** Memory for every function: the Encryption SDK's crypto and cold starts are CPU-bound, and CPU scales with memory. */
export const FUNCTION_MEMORY_MB = 512;
