import { RefreshWorkerEventSource } from "../../lib/infra/function-settings.js";
import { TokenStyle } from "../../lib/sim/tokens.js";
/**
 * What the scale bench (bench/scale.ts) models rather than runs: the latencies of AWS and Exact,
 * the Lambda settings, the consumers' vends. Every number here is printed with the results.
 */

/** Modelled latency of one call, in virtual ms (EventClock.track): the answer comes back this long after the call. */
export const LATENCY_MS = {
  /** One DynamoDB request (GetItem, UpdateItem, Query, …), in-region. */
  dynamo: 10,
  /** One call to Exact's token endpoint (refresh or code exchange). */
  token: 300,
  /** One call to Exact's /api/v1/current/Me. */
  me: 200,
  /** One KMS call (GenerateDataKey, Decrypt); a prepare() asks for its two data keys at once. */
  kms: 15,
  /** One Secrets Manager GetSecretValue (a cache miss). */
  secrets: 30,
  /** One SQS SendMessageBatch. */
  sqsSend: 20,
  /** From a message becoming visible to the event source's invocation with it (its poll). */
  sqsReceive: 100,
} as const;

/** Lambda memory for every function (lib/infra/function-settings.ts FUNCTION_MEMORY_MB). */
export const LAMBDA_MEMORY_GB = 0.5;

/** The schedule of the refresh function (EventBridge). */
export const SCHEDULE_EVERY_MS = 60_000;

/** Seconds of validity consumers ask for: the window leaves 29 s, so 30 would wait every generation. */
export const MIN_VALIDITY_S = 20;

/** A connection-month, for the per-connection-month rates (30 days). */
export const MONTH_MS = 30 * 86_400_000;

/**
 * What a cipher call needs of the hierarchical keyring the stack deploys (lib/crypto/token-cipher.ts,
 * branch-key-store.ts): sealing (encrypt, prepare) the branch key's active version, opening
 * (decrypt) the version a token names; sealing with a prepared sealer needs nothing. A container
 * loads each one (one key store GetItem, one KMS Decrypt) when it has none younger than
 * BRANCH_KEY_CACHE_TTL_SECONDS.
 */
export const BRANCH_KEY_USE = { encrypt: "seal", prepare: "seal", seal: undefined, decrypt: "open" } as const;

export interface ScaleOptions {
  /** Connections (chains), each its own Exact user of one app. @default 10000 */
  readonly connections: number;
  /** Simulated minutes of the hot phase once every chain is seeded and vended. @default 20 */
  readonly hotMinutes: number;
  /** Simulated days of the idle phase (no vends; refresh tokens aged 0–30 days). @default 3 */
  readonly idleDays: number;
  /** The worker's SQS event source: messages per invocation. @default the stack's (lib/infra/function-settings.ts) */
  readonly batchSize: number;
  /** The worker's SQS event source: invocations at once. @default the stack's */
  readonly maxConcurrency: number;
  /** The worker's SQS event source: MaximumBatchingWindowInSeconds. @default the stack's */
  readonly batchingWindowSeconds: number;
  /** Pollers gathering batches at once: Lambda's five (virtual-queue.ts). @default 5 */
  readonly pollers: number;
  /** Share of chains that also vend in a burst around each window. @default 0.02 */
  readonly burstShare: number;
  /** Vends per burst. @default 5 */
  readonly burstVends: number;
  /** Seed of the bench's random choices. @default 1 */
  readonly seed: number;
  /** Progress lines on stderr. @default true */
  readonly progress: boolean;
  /**
   * dynalite in a child process, on the second core (`--dynamo-child-process`). Measured slower
   * here while other work loads the machine (each request then waits for the child to be
   * scheduled); in this process the bench is CPU-bound on one core instead. @default false
   */
  readonly dynamoInChildProcess: boolean;
  /**
   * The simulator's token sizes (`--token-style short|long`). `long` is Exact's today (access
   * tokens about 1,500 characters, refresh tokens about 900: ../shared/exact-online.md); they
   * make the chain item about 3.5 KB, and DynamoDB bills its writes by size. @default long
   */
  readonly tokenStyle: TokenStyle;
}

export const DEFAULT_SCALE_OPTIONS: ScaleOptions = {
  connections: 10_000,
  hotMinutes: 20,
  idleDays: 3,
  batchSize: RefreshWorkerEventSource.batchSize,
  maxConcurrency: RefreshWorkerEventSource.maxConcurrency,
  batchingWindowSeconds: RefreshWorkerEventSource.maxBatchingWindowSeconds,
  pollers: 5,
  burstShare: 0.02,
  burstVends: 5,
  seed: 1,
  progress: true,
  dynamoInChildProcess: false,
  tokenStyle: TokenStyle.Long,
};

const FLAGS: Readonly<Record<string, keyof ScaleOptions>> = {
  "--connections": "connections",
  "--hot-minutes": "hotMinutes",
  "--idle-days": "idleDays",
  "--batch-size": "batchSize",
  "--max-concurrency": "maxConcurrency",
  "--batching-window": "batchingWindowSeconds",
  "--pollers": "pollers",
  "--burst-share": "burstShare",
  "--burst-vends": "burstVends",
  "--seed": "seed",
};

/** `--connections 50 --hot-minutes 20 --token-style short …`, `--quiet` for no progress; throws on anything else. */
export function parseScaleArgs(argv: readonly string[]): ScaleOptions {
  const options: Record<string, number | boolean | string> = { ...DEFAULT_SCALE_OPTIONS };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i] ?? "";
    if (flag === "--quiet") {
      options.progress = false;
      continue;
    }
    if (flag === "--dynamo-child-process") {
      options.dynamoInChildProcess = true;
      continue;
    }
    if (flag === "--token-style") {
      const style = argv[i + 1];
      if (style !== TokenStyle.Short && style !== TokenStyle.Long) {
        throw new Error('bench:scale: --token-style must be "short" or "long"');
      }
      options.tokenStyle = style;
      i += 1;
      continue;
    }
    const key = FLAGS[flag];
    const value = Number(argv[i + 1]);
    if (!key || !Number.isFinite(value) || value < 0) {
      throw new Error(
        `bench:scale: unknown flag or bad value at "${flag}" (flags: ${Object.keys(FLAGS).join(", ")}, --token-style short|long, --quiet, --dynamo-child-process)`,
      );
    }
    options[key] = value;
    i += 1;
  }
  const parsed = options as unknown as ScaleOptions;
  for (const key of ["connections", "batchSize", "maxConcurrency", "pollers"] as const) {
    if (!Number.isInteger(parsed[key]) || parsed[key] < 1) {
      throw new Error(`bench:scale: ${key} must be a whole number ≥ 1`);
    }
  }
  return parsed;
}
