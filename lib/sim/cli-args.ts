import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ValidationError } from "../errors.js";
import { parseSimulatorConfig } from "./config.js";
import type { SimulatorOptions } from "./server.js";
import { TokenStyle } from "./tokens.js";
import type { Variants } from "./variants.js";

/** The CLI listens on a fixed, documented port so curl examples work as written. */
export const CLI_DEFAULT_PORT = 8123;

export const USAGE = `Usage: npm run sim -- [options]

  --port N                    port on 127.0.0.1, 0 picks a free one (default ${CLI_DEFAULT_PORT})
  --access-ttl S              access token lifetime in seconds (default 600)
  --refresh-after S           seconds after the last access token before a refresh is allowed
                              (default access-ttl - 30)
  --refresh-ttl-days D        refresh token lifetime in days (default 30)
  --api-calls-per-minute N    REST API calls per app and division per minute (default 60)
  --api-calls-per-day N       REST API calls per app and division per day (default 5000)
  --config FILE               JSON {"apps":[...],"users":[...]} created at start
  --token-style short|long    long: ~1,500-character access and ~900-character refresh tokens
                              with + / = and ! (as Exact's grew); default short

  Variants (all off by default):
  --old-token-as-400-obsoleted
  --too-early-as-401
  --too-early-carries-refresh-token
  --superseded-as-invalid-grant
  --old-access-token-invalid-after-refresh
  --daily-token-cap           refuse token requests past the daily cap (unconfirmed answer)
  --daily-token-cap-per-day N the cap per app and user (default 200)
  --access-token-revoked-after S  revoke every access token S s after issuing it (default 0: never)
  --help`;

const VARIANT_FLAGS: Record<string, Partial<Variants>> = {
  "old-token-as-400-obsoleted": { oldTokenAs400Obsoleted: true },
  "too-early-as-401": { tooEarlyAs401: true },
  "too-early-carries-refresh-token": { tooEarlyCarriesRefreshToken: true },
  "superseded-as-invalid-grant": { supersededAsInvalidGrant: true },
  "old-access-token-invalid-after-refresh": { oldAccessTokenValidAfterRefresh: false },
  "daily-token-cap": { dailyTokenCap: true },
};

function numberFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  const number = Number(value);
  if (value.trim() === "" || !Number.isFinite(number)) {
    throw new ValidationError(`--${flag} must be a number`);
  }
  return number;
}

function readConfig(file: string): SimulatorOptions["config"] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ValidationError(`--config: cannot read ${file}`, { cause: error });
  }
  try {
    return parseSimulatorConfig(JSON.parse(text));
  } catch (error) {
    const reason = error instanceof ValidationError ? error.message : "not valid JSON";
    throw new ValidationError(`--config ${file}: ${reason}`, { cause: error });
  }
}

/**
 * Turns the command line into simulator options, or `"help"`. Throws `ValidationError` for an
 * unknown flag or a bad value; ranges are checked by `startSimulator` itself.
 */
export function parseCliArgs(argv: string[]): SimulatorOptions | "help" {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: "string" },
        "access-ttl": { type: "string" },
        "refresh-after": { type: "string" },
        "refresh-ttl-days": { type: "string" },
        "api-calls-per-minute": { type: "string" },
        "api-calls-per-day": { type: "string" },
        "daily-token-cap-per-day": { type: "string" },
        "access-token-revoked-after": { type: "string" },
        config: { type: "string" },
        "token-style": { type: "string" },
        help: { type: "boolean" },
        ...Object.fromEntries(Object.keys(VARIANT_FLAGS).map((flag) => [flag, { type: "boolean" as const }])),
      },
    }));
  } catch (error) {
    throw new ValidationError(error instanceof Error ? error.message : String(error), { cause: error });
  }
  if (values.help) {
    return "help";
  }
  const text = (flag: string): string | undefined => {
    const value = values[flag];
    return typeof value === "string" ? value : undefined;
  };
  const variants: Partial<Variants> = {};
  for (const [flag, variant] of Object.entries(VARIANT_FLAGS)) {
    if (values[flag]) Object.assign(variants, variant);
  }
  const capPerDay = numberFlag(text("daily-token-cap-per-day"), "daily-token-cap-per-day");
  if (capPerDay !== undefined) {
    variants.dailyTokenCapPerDay = capPerDay;
  }
  const revokedAfter = numberFlag(text("access-token-revoked-after"), "access-token-revoked-after");
  if (revokedAfter !== undefined) {
    variants.accessTokenRevokedAfterSeconds = revokedAfter;
  }
  const configFile = text("config");
  const tokenStyle = text("token-style");
  if (tokenStyle !== undefined && tokenStyle !== TokenStyle.Short && tokenStyle !== TokenStyle.Long) {
    throw new ValidationError(`--token-style must be "${TokenStyle.Short}" or "${TokenStyle.Long}"`);
  }
  return {
    port: numberFlag(text("port"), "port") ?? CLI_DEFAULT_PORT,
    accessTtlSeconds: numberFlag(text("access-ttl"), "access-ttl"),
    refreshAfterSeconds: numberFlag(text("refresh-after"), "refresh-after"),
    refreshTtlDays: numberFlag(text("refresh-ttl-days"), "refresh-ttl-days"),
    apiCallsPerMinute: numberFlag(text("api-calls-per-minute"), "api-calls-per-minute"),
    apiCallsPerDay: numberFlag(text("api-calls-per-day"), "api-calls-per-day"),
    config: configFile === undefined ? undefined : readConfig(configFile),
    variants,
    ...(tokenStyle !== undefined ? { tokenStyle } : {}),
  };
}
