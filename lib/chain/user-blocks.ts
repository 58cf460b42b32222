import { UserBlocked } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import { type UserBlockReason, userBlockReason } from "../exact/classify-token-response.js";
import { BLOCKED_LOGIN_RECHECK_MS, BLOCKED_RECHECK_MS, blockedReason } from "./chain-record.js";
import { announce, type EngineDeps } from "./engine-deps.js";
import type { LeaseSession } from "./lease-session.js";
import { blocked } from "./lease-transitions.js";

/** Exact's `Reason` for refusing a user (shared/exact-online.md), as the event and status reason. */
export const BLOCKING_REASONS: Readonly<Record<UserBlockReason, EventReason>> = {
  BlockedUser: EventReason.BlockedUser,
  InactiveUser: EventReason.InactiveUser,
  LicenseExpired: EventReason.LicenseExpired,
  NoDivisionAccess: EventReason.NoDivisionAccess,
};

/** The reason a 403's `Reason` header gives for refusing the user, or undefined when it names none. */
export function blockingReason(header: string | undefined): EventReason | undefined {
  const reason = userBlockReason(header);
  return reason ? BLOCKING_REASONS[reason] : undefined;
}

/**
 * Exact refuses the session's user for a reason no login fixes, on `/current/Me`
 * (identity-check.ts) or at the token endpoint (token-refusals.ts): BLOCKED, re-checked slowly
 * (with `/current/Me` while the chain has a refresh token to keep it alive, else by a login, much
 * more slowly), announced once per block: not again when a re-check finds the same reason.
 * `extra` goes into the same write (lease-transitions.ts `blocked`).
 * @returns the error a caller sees, or undefined when another holder superseded this one
 */
export async function blockUser(
  deps: Pick<EngineDeps, "now" | "log" | "events">,
  session: LeaseSession,
  reason: EventReason,
  chain: { readonly keepsRefreshToken: boolean },
  extra: Parameters<typeof blocked>[3] = {},
): Promise<UserBlocked | undefined> {
  const { now } = deps;
  const recheckMs = chain.keepsRefreshToken ? BLOCKED_RECHECK_MS : BLOCKED_LOGIN_RECHECK_MS;
  const recheckAtMs = now() + recheckMs;
  const before = blockedReason(session.record);
  if (!(await session.finish(blocked(reason, recheckAtMs, now(), extra)))) return undefined;
  if (before !== reason) {
    deps.log.warn("Exact refuses the chain's user", { connectionId: session.connectionId, reason });
    await announce(deps, BrokerEventType.UserBlocked, session, reason);
  }
  return new UserBlocked(
    `connection "${session.connectionId}": Exact refuses its user (${reason}); no login can fix that; checked again at ${new Date(recheckAtMs).toISOString()}`,
    { retryAfterSeconds: Math.ceil(recheckMs / 1000) },
  );
}
