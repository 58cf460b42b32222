import { ValidationError } from "../errors.js";
import { parseSimulatorConfig, type SimulatorConfig } from "./config.js";
import type { SimulatorOptions } from "./server.js";
import { TokenStyle } from "./tokens.js";
import { checkNumber } from "./validate.js";
import { DEFAULT_VARIANTS, parseVariants, type Variants } from "./variants.js";

/** The options with every default filled in and every value checked. */
export interface SimulatorSettings {
  port: number;
  accessTtlSeconds: number;
  refreshAfterSeconds: number;
  refreshTtlDays: number;
  apiCallsPerMinute: number;
  apiCallsPerDay: number;
  config: SimulatorConfig;
  variants: Variants;
  tokenStyle: TokenStyle;
  now: () => number;
}

/** Exact: access tokens live 600 s and may be refreshed only in their last 30 s. */
const DEFAULT_ACCESS_TTL_SECONDS = 600;
const REFRESH_WINDOW_SECONDS = 30;
/** Exact: refresh tokens expire after 30 days unused (since July 2021). */
const DEFAULT_REFRESH_TTL_DAYS = 30;
/** Exact: "60 calls per minute and 5,000 per day, per app and per division". */
const DEFAULT_API_CALLS_PER_MINUTE = 60;
const DEFAULT_API_CALLS_PER_DAY = 5000;
const API_CALLS_RANGE = { min: 1, max: 10_000_000, integer: true };

export function resolveSettings(options: SimulatorOptions): SimulatorSettings {
  const accessTtlSeconds = checkNumber(
    options.accessTtlSeconds ?? DEFAULT_ACCESS_TTL_SECONDS,
    { min: 1, max: 365 * 24 * 3600, integer: true },
    "accessTtlSeconds",
  );
  const refreshAfterSeconds = checkNumber(
    options.refreshAfterSeconds ?? Math.max(0, accessTtlSeconds - REFRESH_WINDOW_SECONDS),
    { min: 0, max: 365 * 24 * 3600 },
    "refreshAfterSeconds",
  );
  const refreshTtlDays = checkNumber(
    options.refreshTtlDays ?? DEFAULT_REFRESH_TTL_DAYS,
    { min: Number.MIN_VALUE, max: 3650 },
    "refreshTtlDays",
  );
  return {
    port: checkNumber(options.port ?? 0, { min: 0, max: 65535, integer: true }, "port"),
    accessTtlSeconds,
    refreshAfterSeconds,
    refreshTtlDays,
    apiCallsPerMinute: checkNumber(
      options.apiCallsPerMinute ?? DEFAULT_API_CALLS_PER_MINUTE,
      API_CALLS_RANGE,
      "apiCallsPerMinute",
    ),
    apiCallsPerDay: checkNumber(
      options.apiCallsPerDay ?? DEFAULT_API_CALLS_PER_DAY,
      API_CALLS_RANGE,
      "apiCallsPerDay",
    ),
    config: parseSimulatorConfig(options.config ?? {}),
    tokenStyle: checkTokenStyle(options.tokenStyle ?? TokenStyle.Short),
    variants: { ...DEFAULT_VARIANTS, ...parseVariants(options.variants ?? {}) },
    now: options.now ?? Date.now,
  };
}

function checkTokenStyle(value: unknown): TokenStyle {
  if (value !== TokenStyle.Short && value !== TokenStyle.Long) {
    throw new ValidationError(`tokenStyle must be "${TokenStyle.Short}" or "${TokenStyle.Long}"`);
  }
  return value;
}
