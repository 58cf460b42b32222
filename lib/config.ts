import { BrokerFunction, checkTiming } from "./config-timing.js";
import { ConfigurationError } from "./errors.js";

/** Engine settings, read once from the environment at start. */
export interface BrokerConfig {
  readonly tableName: string;
  /** Exact accepts a refresh only in the last this-many seconds of an access token's life. */
  readonly refreshWindowSeconds: number;
  /** Added to the window's start so clock skew never makes us refresh too early. */
  readonly refreshMarginMs: number;
  /** A token call (refresh, probe, code exchange) holds the chain's lease this long. */
  readonly leaseMs: number;
  /** A login (a TOTP step wait, ~8 pages, the code exchange and /current/Me) holds the lease this long. */
  readonly loginLeaseMs: number;
  readonly httpTimeoutMs: number;
  readonly keepaliveDays: number;
  /** HISTORY_DAYS: how long a connection's history items are kept (their DynamoDB TTL), in days. */
  readonly historyDays: number;
  readonly allowLoopback: boolean;
  /**
   * This Lambda function's configured timeout (FUNCTION_TIMEOUT_SECONDS, set by the stack: Lambda
   * does not expose it in the environment); absent outside Lambda.
   */
  readonly functionTimeoutMs?: number;
  /** Which of the broker's functions this is (BROKER_FUNCTION, set by the stack); absent outside Lambda. */
  readonly functionName?: BrokerFunction;
}

/** HISTORY_DAYS's default: a quarter of audit trail per connection, about 13,000 small items for a hot chain. */
export const DEFAULT_HISTORY_DAYS = 90;
/** Ten years: longer is almost surely a typo (DynamoDB TTL itself has no limit). */
export const MAX_HISTORY_DAYS = 3650;

/** Lambda's largest function timeout, in seconds (Lambda quotas: 15 minutes). */
const LAMBDA_MAX_TIMEOUT_SECONDS = 900;

type Env = Readonly<Record<string, string | undefined>>;

function intFrom<F extends number | undefined>(
  env: Env,
  name: string,
  fallback: F,
  min: number,
  max: number,
): number | F {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigurationError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

const BROKER_FUNCTIONS: readonly string[] = Object.values(BrokerFunction);

function brokerFunctionFrom(env: Env): BrokerFunction | undefined {
  const raw = env.BROKER_FUNCTION;
  if (raw === undefined || raw === "") return undefined;
  if (!BROKER_FUNCTIONS.includes(raw)) {
    throw new ConfigurationError(
      `BROKER_FUNCTION must be one of ${BROKER_FUNCTIONS.join(", ")} (the stack sets it), got "${raw}"`,
    );
  }
  return raw as BrokerFunction;
}

/**
 * Reads and checks the broker's environment, including every timing relation (config-timing.ts);
 * throws ConfigurationError with a fix-it message.
 */
export function loadConfig(env: Env = process.env): BrokerConfig {
  const tableName = env.TABLE_NAME ?? "";
  if (tableName.length < 3) {
    throw new ConfigurationError("TABLE_NAME must name the broker's DynamoDB table (3 or more characters)");
  }
  const timing = {
    leaseMs: intFrom(env, "LEASE_SECONDS", 20, 1, 600) * 1000,
    loginLeaseMs: intFrom(env, "LOGIN_LEASE_SECONDS", 120, 1, 600) * 1000,
    httpTimeoutMs: intFrom(env, "HTTP_TIMEOUT_MS", 8_000, 100, 120_000),
  };
  const timeoutSeconds = intFrom(env, "FUNCTION_TIMEOUT_SECONDS", undefined, 1, LAMBDA_MAX_TIMEOUT_SECONDS);
  const functionTimeoutMs = timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000;
  const functionName = brokerFunctionFrom(env);
  checkTiming({ ...timing, functionTimeoutMs, functionName });
  return {
    tableName,
    refreshWindowSeconds: intFrom(env, "REFRESH_WINDOW_SECONDS", 30, 1, 3_600),
    refreshMarginMs: intFrom(env, "REFRESH_MARGIN_MS", 1_000, 0, 60_000),
    ...timing,
    keepaliveDays: intFrom(env, "KEEPALIVE_DAYS", 25, 1, 29),
    historyDays: intFrom(env, "HISTORY_DAYS", DEFAULT_HISTORY_DAYS, 1, MAX_HISTORY_DAYS),
    allowLoopback: env.EXACT_ALLOW_LOOPBACK === "1",
    ...(functionTimeoutMs === undefined ? {} : { functionTimeoutMs }),
    ...(functionName === undefined ? {} : { functionName }),
  };
}
