import { type ChainRecord, ChainStatus, type DivisionPinnedBy } from "../chain/chain-record.js";
import { budgetExhaustedFor, errorsInLastHour, TOKEN_ERRORS_PER_HOUR } from "../chain/error-budget.js";
import { LOGIN_FAILURES_PER_HOUR } from "../chain/login-budget.js";
import { CLOCK_SKEW_BOUND_MS } from "../chain/timing.js";

/** What `exact-broker status` shows: state, ages and budgets, never a token or ciphertext. */
export interface StatusReport {
  readonly connectionId: string;
  readonly status: string;
  readonly statusReason: string | null;
  readonly mode: string;
  readonly clientId: string;
  readonly baseUrl: string;
  readonly exactUser: string | null;
  /** What a vend answers: the pinned division once pinned. */
  readonly division: number | null;
  /** The division no heal or identity check changes; null until pinned (at first consent, unless given). */
  readonly pinnedDivision: number | null;
  /** `operator` (connection add --division, set-division) or `consent` (the first verified chain's). */
  readonly divisionPinnedBy: DivisionPinnedBy | null;
  readonly generation: number;
  readonly accessTokenExpiresInSeconds: number | null;
  readonly refreshTokenAgeSeconds: number | null;
  readonly refreshWindowOpensInSeconds: number | null;
  readonly lease: {
    readonly owner: string;
    readonly purpose: string | null;
    readonly expiresInSeconds: number;
  } | null;
  readonly pendingNote: boolean;
  /** Set while the chain is VERIFYING: stored, its /current/Me check pending (never served meanwhile). */
  readonly identityCheck: {
    readonly source: string;
    readonly pendingForSeconds: number;
    readonly failedChecksLastHour: number;
  } | null;
  readonly lastVendAgoSeconds: number | null;
  readonly tokenErrorsThisHour: number;
  readonly tokenErrorBudget: number;
  readonly budgetSpentForSeconds: number | null;
  readonly backoffForSeconds: number | null;
  readonly failedLoginsLastHour: number;
  readonly lastLoginFailure: string | null;
}

const secondsBetween = (fromMs: number | undefined, toMs: number): number | null =>
  fromMs === undefined ? null : Math.round((toMs - fromMs) / 1000);

export function statusReport(record: ChainRecord, nowMs: number): StatusReport {
  const leaseLive =
    record.leaseOwner !== undefined && (record.leaseUntilMs ?? 0) + CLOCK_SKEW_BOUND_MS > nowMs;
  return {
    connectionId: record.connectionId,
    status: record.status,
    statusReason: record.statusReason ?? null,
    mode: record.mode,
    clientId: record.clientId,
    baseUrl: record.baseUrl,
    exactUser: record.exactUserName ?? null,
    division: record.division ?? null,
    pinnedDivision: record.pinnedDivision ?? null,
    divisionPinnedBy: record.pinnedDivision === undefined ? null : (record.divisionPinnedBy ?? null),
    generation: record.generation,
    accessTokenExpiresInSeconds:
      record.accessExpiresAtMs === undefined ? null : -(secondsBetween(record.accessExpiresAtMs, nowMs) ?? 0),
    refreshTokenAgeSeconds: secondsBetween(record.refreshIssuedAtMs, nowMs),
    refreshWindowOpensInSeconds:
      record.windowOpensAtMs === undefined ? null : -(secondsBetween(record.windowOpensAtMs, nowMs) ?? 0),
    lease: leaseLive
      ? {
          owner: record.leaseOwner ?? "",
          purpose: record.leasePurpose ?? null,
          expiresInSeconds: Math.round(((record.leaseUntilMs ?? nowMs) - nowMs) / 1000),
        }
      : null,
    pendingNote: record.inflight !== undefined,
    // A chain stopped at REAUTH_REQUIRED (division_unreachable) keeps its note but is not retried.
    identityCheck:
      record.verification && record.status !== ChainStatus.ReauthRequired
        ? {
            source: record.verification.source,
            pendingForSeconds: secondsBetween(record.verification.startedAtMs, nowMs) ?? 0,
            failedChecksLastHour: errorsInLastHour(record.identityChecks, nowMs),
          }
        : null,
    lastVendAgoSeconds: secondsBetween(record.lastVendAtMs, nowMs),
    tokenErrorsThisHour: errorsInLastHour(record.tokenErrors, nowMs),
    tokenErrorBudget: TOKEN_ERRORS_PER_HOUR,
    budgetSpentForSeconds: budgetExhaustedFor(record.tokenErrors, nowMs) ?? null,
    failedLoginsLastHour: errorsInLastHour(record.loginFailures, nowMs),
    lastLoginFailure: record.lastLoginFailure ?? null,
    backoffForSeconds:
      record.backoffUntilMs !== undefined && record.backoffUntilMs > nowMs
        ? Math.ceil((record.backoffUntilMs - nowMs) / 1000)
        : null,
  };
}

function divisionText(report: StatusReport): string {
  if (report.pinnedDivision === null) {
    return report.division === null
      ? "- (not pinned yet; the first consent pins it)"
      : `${report.division} (not pinned)`;
  }
  const by = report.divisionPinnedBy === "operator" ? "by an operator" : "at first consent";
  return `${report.pinnedDivision} (pinned ${by})`;
}

export function formatStatus(report: StatusReport): string {
  const rows: Array<[string, unknown]> = [
    ["connection", report.connectionId],
    ["status", report.statusReason ? `${report.status} (${report.statusReason})` : report.status],
    ["mode", report.mode],
    ["client ID", report.clientId],
    ["base URL", report.baseUrl],
    ["Exact user", report.exactUser ?? "-"],
    ["division", divisionText(report)],
    ["generation", report.generation],
    [
      "access token expires in",
      report.accessTokenExpiresInSeconds === null ? "-" : `${report.accessTokenExpiresInSeconds} s`,
    ],
    [
      "refresh token age",
      report.refreshTokenAgeSeconds === null ? "-" : `${report.refreshTokenAgeSeconds} s`,
    ],
    [
      "refresh window opens in",
      report.refreshWindowOpensInSeconds === null ? "-" : `${report.refreshWindowOpensInSeconds} s`,
    ],
    [
      "lease",
      report.lease
        ? `${report.lease.purpose} by ${report.lease.owner}, ${report.lease.expiresInSeconds} s left`
        : "free",
    ],
    ["unfinished token call", report.pendingNote ? "yes (next holder probes)" : "no"],
    [
      "identity check",
      report.identityCheck
        ? `pending for ${report.identityCheck.pendingForSeconds} s (chain from ${report.identityCheck.source}; ${report.identityCheck.failedChecksLastHour} failed checks in the last hour); retried automatically`
        : "-",
    ],
    ["last vend", report.lastVendAgoSeconds === null ? "never" : `${report.lastVendAgoSeconds} s ago`],
    ["token errors in the last hour", `${report.tokenErrorsThisHour} of ${report.tokenErrorBudget}`],
    ["failed logins in the last hour", `${report.failedLoginsLastHour} of ${LOGIN_FAILURES_PER_HOUR}`],
    ["last login failure", report.lastLoginFailure ?? "-"],
    ["backoff", report.backoffForSeconds === null ? "none" : `${report.backoffForSeconds} s`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${String(v)}`).join("\n");
}
