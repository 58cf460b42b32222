import { ConfigurationError } from "./errors.js";

/** Engine settings, read once from the environment at start. */
export interface BrokerConfig {
  readonly tableName: string;
  /** Exact accepts a refresh only in the last this-many seconds of an access token's life. */
  readonly refreshWindowSeconds: number;
  /** Added to the window's start so clock skew never makes us refresh too early. */
  readonly refreshMarginMs: number;
  readonly leaseMs: number;
  /** A login (several pages, perhaps a wait for the next TOTP step) holds the lease this long. */
  readonly loginLeaseMs: number;
  readonly httpTimeoutMs: number;
  readonly keepaliveDays: number;
  readonly allowLoopback: boolean;
}

/** The lease must outlive a token call by this much, so the holder can still commit. */
export const LEASE_HEADROOM_MS = 2_000;

type Env = Readonly<Record<string, string | undefined>>;

function intFrom(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigurationError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

/** Reads and checks the broker's environment; throws ConfigurationError with a fix-it message. */
export function loadConfig(env: Env = process.env): BrokerConfig {
  const tableName = env.TABLE_NAME ?? "";
  if (tableName.length < 3) {
    throw new ConfigurationError("TABLE_NAME must name the broker's DynamoDB table (3 or more characters)");
  }
  const leaseMs = intFrom(env, "LEASE_SECONDS", 20, 3, 600) * 1000;
  const httpTimeoutMs = intFrom(env, "HTTP_TIMEOUT_MS", 8_000, 100, 120_000);
  if (leaseMs < httpTimeoutMs + LEASE_HEADROOM_MS) {
    throw new ConfigurationError(
      `LEASE_SECONDS (${leaseMs / 1000}) must outlast HTTP_TIMEOUT_MS (${httpTimeoutMs}) by at least ` +
        `${LEASE_HEADROOM_MS / 1000} s, or a slow token call could outlive its lease; raise LEASE_SECONDS ` +
        `to ${Math.ceil((httpTimeoutMs + LEASE_HEADROOM_MS) / 1000)} or more`,
    );
  }
  return {
    tableName,
    refreshWindowSeconds: intFrom(env, "REFRESH_WINDOW_SECONDS", 30, 1, 3_600),
    refreshMarginMs: intFrom(env, "REFRESH_MARGIN_MS", 1_000, 0, 60_000),
    leaseMs,
    // Up to 31 s waiting for a fresh TOTP step, then about 8 page loads and a code exchange.
    loginLeaseMs: intFrom(env, "LOGIN_LEASE_SECONDS", 120, 45, 600) * 1000,
    httpTimeoutMs,
    keepaliveDays: intFrom(env, "KEEPALIVE_DAYS", 25, 1, 29),
    allowLoopback: env.EXACT_ALLOW_LOOPBACK === "1",
  };
}
