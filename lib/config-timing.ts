import { CLOCK_SKEW_BOUND_MS } from "./chain/timing.js";
import { ConfigurationError } from "./errors.js";
import {
  TOTP_PERIOD_MS,
  TOTP_STEP_END_MARGIN_MS,
  TOTP_STEP_START_MARGIN_MS,
} from "./exact/login/totp-steps.js";

/**
 * The timing relations between the broker's settings (design invariant 14: nothing runs past its
 * deadline). loadConfig checks them at start and the CDK stack at synth, with the same function,
 * so a deployment the engine would refuse never reaches Lambda.
 *
 * Both lease relations subtract CLOCK_SKEW_BOUND_MS (lib/chain/timing.ts, 3 s): a holder stops
 * starting work that long before its lease ends, so only `lease − skew` of a lease is usable.
 */

/**
 * The four Lambda functions, as the stack names them in BROKER_FUNCTION (and functions/<name>.ts).
 * Each has its own least timeout (see {@link checkTiming}).
 */
export const BrokerFunction = {
  TokenVend: "token-vend",
  Refresh: "refresh",
  RefreshWorker: "refresh-worker",
  FallbackLogin: "fallback-login",
  Connect: "connect",
} as const;
export type BrokerFunction = (typeof BrokerFunction)[keyof typeof BrokerFunction];

/**
 * Milliseconds the refresh-worker waits for a window that has not opened when its message
 * arrives. The dispatcher's delay is rounded up to whole seconds, so a message arrives at or
 * after the chain's due time; this covers clocks that disagree, and matches Exact's 30 s window.
 */
export const WINDOW_WAIT_MS = 30_000;

/**
 * Milliseconds a lease must have left after a call to Exact for the conditional DynamoDB write
 * that persists its answer (one UpdateItem: tens of ms, the rest for the SDK's retries).
 */
export const LEASE_HEADROOM_MS = 2_000;

/**
 * Milliseconds of the login driver's work on the login pages (12 s): about 8 page loads of the
 * One Exact Identity flow (one-exact-identity-driver.ts) at 1.5 s each. An estimate, not a
 * measurement: Exact publishes no latency for its login hosts.
 */
export const LOGIN_PAGES_MS = 12_000;

/**
 * The least the login driver needs, in milliseconds (45 s): the longest wait for an unused TOTP
 * step, a whole step (30 s) when the current one was already used plus the start and end margins
 * (1 s + 2 s, lib/exact/login/totp.ts), and then {@link LOGIN_PAGES_MS} (12 s).
 */
export const LOGIN_DRIVER_MIN_MS =
  TOTP_PERIOD_MS + TOTP_STEP_START_MARGIN_MS + TOTP_STEP_END_MARGIN_MS + LOGIN_PAGES_MS;

/**
 * Milliseconds a function's timeout must leave beyond the lease it holds (5 s): a cold start
 * (about 1 s; importing a bundle alone takes ~0.3 s, toolchain notes), the secret read from
 * Secrets Manager, the KMS data-key calls and the few DynamoDB round trips before the lease is
 * taken and after it ends. A process killed while it holds a lease would leave the lease held
 * and an answer from Exact unpersisted.
 */
export const FUNCTION_MARGIN_MS = 5_000;

/** The settings the relations relate, in milliseconds. */
export interface TimingSettings {
  /** LEASE_SECONDS: how long a token call (refresh, probe, code exchange) holds the chain. */
  readonly leaseMs: number;
  /** LOGIN_LEASE_SECONDS: how long a login holds the chain. */
  readonly loginLeaseMs: number;
  /** HTTP_TIMEOUT_MS: one call to Exact's token endpoint or /api/v1/current/Me. */
  readonly httpTimeoutMs: number;
  /** FUNCTION_TIMEOUT_SECONDS: the Lambda function's configured timeout; given with `functionName`. */
  readonly functionTimeoutMs?: number | undefined;
  /** BROKER_FUNCTION: which function this is; given with `functionTimeoutMs`. */
  readonly functionName?: BrokerFunction | undefined;
}

/**
 * Milliseconds of a login lease the login driver may use: the rest is for the code exchange and
 * the /current/Me identity check that follow it under the same lease, the persisting write and
 * the clock-skew bound. At least {@link LOGIN_DRIVER_MIN_MS} for any settings checkTiming accepts.
 */
export function loginDriverBudgetMs(
  settings: Pick<TimingSettings, "loginLeaseMs" | "httpTimeoutMs">,
): number {
  return settings.loginLeaseMs - 2 * settings.httpTimeoutMs - LEASE_HEADROOM_MS - CLOCK_SKEW_BOUND_MS;
}

const seconds = (ms: number): string => `${ms / 1000} s`;
const wholeSeconds = (ms: number): number => Math.ceil(ms / 1000);

/**
 * Throws ConfigurationError when the settings break a timing relation, naming the settings, their
 * values, the relation, what would go wrong and the smallest value that works:
 *
 * 1. lease ≥ http + headroom + skew: one token call and its persisting write fit in the part of
 *    the lease its holder may use.
 * 2. loginLease ≥ LOGIN_DRIVER_MIN_MS + 2 × http + headroom + skew: the driver, then the code
 *    exchange and the identity check, fit in the login lease.
 * 3. With the function named: its timeout ≥ lease + FUNCTION_MARGIN_MS for token-vend, refresh,
 *    refresh-worker and connect (each takes a lease for its token calls; refresh only when it
 *    has no queue to dispatch to), ≥ loginLease + FUNCTION_MARGIN_MS for
 *    fallback-login, so no invocation is killed while it holds a lease.
 */
export function checkTiming(settings: TimingSettings): void {
  const { leaseMs, loginLeaseMs, httpTimeoutMs, functionTimeoutMs, functionName } = settings;
  const skewAndHeadroom =
    `+ ${seconds(LEASE_HEADROOM_MS)} for the write that persists the answer + ` +
    `${seconds(CLOCK_SKEW_BOUND_MS)} of clock skew (its holder stops that long before the lease ends)`;

  const leaseNeedMs = httpTimeoutMs + LEASE_HEADROOM_MS + CLOCK_SKEW_BOUND_MS;
  if (leaseMs < leaseNeedMs) {
    throw new ConfigurationError(
      `LEASE_SECONDS (${leaseMs / 1000}) must be at least HTTP_TIMEOUT_MS (${httpTimeoutMs}) ` +
        `${skewAndHeadroom} = ${seconds(leaseNeedMs)}: a token call could outlive its lease, and another ` +
        `invocation could send the same refresh token; raise LEASE_SECONDS to ${wholeSeconds(leaseNeedMs)} ` +
        "or lower HTTP_TIMEOUT_MS",
    );
  }

  const loginLeaseNeedMs = LOGIN_DRIVER_MIN_MS + 2 * httpTimeoutMs + LEASE_HEADROOM_MS + CLOCK_SKEW_BOUND_MS;
  if (loginLeaseMs < loginLeaseNeedMs) {
    throw new ConfigurationError(
      `LOGIN_LEASE_SECONDS (${loginLeaseMs / 1000}) must be at least ${seconds(LOGIN_DRIVER_MIN_MS)} for ` +
        `the login driver (up to ${seconds(LOGIN_DRIVER_MIN_MS - LOGIN_PAGES_MS)} waiting for an unused ` +
        `TOTP step, ${seconds(LOGIN_PAGES_MS)} for the login pages) + 2 × HTTP_TIMEOUT_MS (${httpTimeoutMs}) ` +
        `for the code exchange and the /current/Me check ${skewAndHeadroom} = ${seconds(loginLeaseNeedMs)}: ` +
        "a login could outlive its lease, and another invocation could start a second login; raise " +
        `LOGIN_LEASE_SECONDS to ${wholeSeconds(loginLeaseNeedMs)} or lower HTTP_TIMEOUT_MS`,
    );
  }

  if ((functionTimeoutMs === undefined) !== (functionName === undefined)) {
    throw new ConfigurationError(
      "FUNCTION_TIMEOUT_SECONDS and BROKER_FUNCTION go together (the stack sets both): " +
        `got ${functionTimeoutMs === undefined ? "only BROKER_FUNCTION" : "only FUNCTION_TIMEOUT_SECONDS"}`,
    );
  }
  if (functionTimeoutMs === undefined || functionName === undefined) return;

  const login = functionName === BrokerFunction.FallbackLogin;
  const heldMs = login ? loginLeaseMs : leaseMs;
  const timeoutNeedMs = heldMs + FUNCTION_MARGIN_MS;
  if (functionTimeoutMs < timeoutNeedMs) {
    throw new ConfigurationError(
      `FUNCTION_TIMEOUT_SECONDS (${functionTimeoutMs / 1000}) of ${functionName} must be at least ` +
        `${login ? "LOGIN_LEASE_SECONDS" : "LEASE_SECONDS"} (${heldMs / 1000}) + ${seconds(FUNCTION_MARGIN_MS)} ` +
        `for the cold start, secret, KMS and DynamoDB calls = ${seconds(timeoutNeedMs)}: Lambda could kill ` +
        `the invocation while it holds the chain's lease, losing ${login ? "the login's" : "a token call's"} ` +
        `answer; raise the function's timeout to ${wholeSeconds(timeoutNeedMs)} s`,
    );
  }
}
