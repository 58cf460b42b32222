import { Duration } from "aws-cdk-lib";
import { FunctionName } from "./bundling.js";

/**
 * The engine settings the stack deploys with (lib/config.ts reads them). They are set
 * explicitly in every function's environment, so the timeouts below, derived from them, cannot
 * drift from what the engine does if lib/config.ts's defaults change.
 */
export const EngineSettings = {
  /** LEASE_SECONDS: how long a refresh holds a chain (must outlast one token call + 2 s). */
  leaseSeconds: 20,
  /** HTTP_TIMEOUT_MS: one call to Exact's token endpoint or /current/Me is aborted after this. */
  httpTimeoutMs: 8_000,
  /** LOGIN_LEASE_SECONDS: a login (a TOTP step wait, ~8 pages, a code exchange) holds the chain this long. */
  loginLeaseSeconds: 120,
} as const;

/** What VendDoor waits, at most, for another holder's generation: the lease plus 5 s (vend-door.ts). */
const VEND_WAIT_SECONDS = EngineSettings.leaseSeconds + 5;
/** ScheduledRefresh's default horizon: one run refreshes every window opening before the next tick. */
const REFRESH_HORIZON_SECONDS = 60;
const HTTP_SECONDS = EngineSettings.httpTimeoutMs / 1000;

/**
 * Each function's timeout, with its reason. The margins cover a cold start (~1 s), the secret
 * read, KMS data-key calls and a few DynamoDB round trips.
 */
export const FunctionTimeouts: Readonly<Record<FunctionName, Duration>> = {
  // 25 s waiting for another holder's generation, then one token call of its own (8 s) and
  // its commit; +7 s margin = 40 s. A consumer's invoke never outlives the answer it waits for.
  [FunctionName.TokenVend]: Duration.seconds(VEND_WAIT_SECONDS + HTTP_SECONDS + 7),
  // A run sleeps up to 60 s for refresh windows that open before the next tick, then refreshes
  // the last chain inside its 20 s lease; +10 s margin = 90 s. Runs may overlap the next tick:
  // the leases keep them apart.
  [FunctionName.Refresh]: Duration.seconds(REFRESH_HORIZON_SECONDS + EngineSettings.leaseSeconds + 10),
  // A login runs under the 120 s login lease (it stops 10 s before its end), then the code
  // exchange and /current/Me (8 s each); +14 s margin = 150 s. The function must outlive the
  // lease, so a slow login ends in the engine's own bookkeeping, not in a killed process.
  [FunctionName.FallbackLogin]: Duration.seconds(EngineSettings.loginLeaseSeconds + 2 * HTTP_SECONDS + 14),
  // One code exchange and one /current/Me (8 s each); +9 s margin = 25 s.
  [FunctionName.Connect]: Duration.seconds(2 * HTTP_SECONDS + 9),
};

/**
 * Reserved concurrency where a cap is part of the design; token-vend has none (it is the hot
 * path: a cap would throttle consumers).
 */
export const ReservedConcurrency: Readonly<Partial<Record<FunctionName, number>>> = {
  // A run may last 90 s, so the next minute's tick can start while one still runs; more than
  // two at once would only be runs piling up behind a slow Exact.
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
