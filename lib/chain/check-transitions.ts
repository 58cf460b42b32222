import type { AccessCheck } from "./access-check.js";
import { ChainStatus, type DivisionPinnedBy, type ErrorBudget } from "./chain-record.js";
import { HistoryOutcome } from "./history-entry.js";
import { BACKOFF_ATTRS, dueAt, type Transition, transition } from "./lease-transitions.js";

/*
 * The writes that end the lease of a `/current/Me` check (lease-transitions.ts has the others):
 * a started chain's identity check passed, or a token a consumer reported refused was checked.
 */

/**
 * The identity check passed: this connection's chain, ACTIVE. `division` is the pinned one
 * when the connection has one (division-check.ts); the pin fields are set at the first pin only.
 */
export function verified(
  identity: {
    readonly exactUserId: string;
    readonly exactUserName: string;
    readonly division: number | null;
    readonly pinnedDivision?: number;
    readonly divisionPinnedBy?: DivisionPinnedBy;
  },
  dueAtMs: number,
  nowMs: number,
): Transition {
  return transition({
    set: {
      ...identity,
      ...dueAt(dueAtMs, nowMs),
      status: ChainStatus.Active,
      statusChangedAtMs: nowMs,
      failureStreak: 0,
    },
    remove: [
      "verification",
      "identityChecks",
      "statusReason",
      "loginFailures",
      "lastLoginFailure",
      ...BACKOFF_ATTRS,
    ],
    history: { outcome: HistoryOutcome.Verified },
  });
}

/**
 * The `/current/Me` check of a token a consumer reported refused (access-check.ts) is recorded:
 * no other check of that generation follows. `identityChecks`: Me refused it, a 4xx Exact counts,
 * so the checks' budget (8 an hour, error-budget.ts) spends one.
 */
export function accessChecked(check: AccessCheck, identityChecks?: ErrorBudget): Transition {
  return transition({ set: { accessCheck: check, ...(identityChecks ? { identityChecks } : {}) } });
}
