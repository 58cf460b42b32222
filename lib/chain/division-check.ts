import { ExactUnavailable, ReauthRequired } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import type { ExactMe } from "../exact/oauth-client.js";
import { type ChainRecord, DivisionPinnedBy } from "./chain-record.js";
import { checkFailed, type VerifyOutcome } from "./check-failures.js";
import { announce, type EngineDeps } from "./engine-deps.js";
import type { LeaseSession } from "./lease-session.js";
import { needsOperator } from "./lease-transitions.js";

/**
 * Whether a user can open a division, as far as Exact's answer tells. `rate_limited`: Exact's
 * 429, the (app, division) API budget spent (60 a minute, 5,000 a day, shared with the
 * connection's consumers); it does not say whether the user can open the division.
 */
export type DivisionReach = "reachable" | "unreachable" | "rate_limited" | "unknown";

/** Exact's `Reason` header for "the user does not have access to the requested division". */
export const NO_DIVISION_ACCESS = "NoDivisionAccess";

/** The shortest division check worth making (ms): a round trip to Exact, with room. */
const MIN_DIVISION_CHECK_MS = 300;

/**
 * Whether the user behind `accessToken` can open `division`: one row of that division's
 * `system/Divisions`. 200 reaches it; 403 with `Reason: NoDivisionAccess` (or without a
 * reason) does not; 429 is "rate_limited". Anything else (5xx, no answer, 401, a 403 for another
 * reason such as `BlockedUser`) says nothing about the division: "unknown".
 */
export async function checkPinnedDivision(
  deps: Pick<EngineDeps, "oauth">,
  args: {
    readonly baseUrl: string;
    readonly accessToken: string;
    readonly division: number;
    readonly timeoutMs: number;
  },
): Promise<DivisionReach> {
  const answer = await deps.oauth.divisionReachable(
    args.baseUrl,
    args.accessToken,
    args.division,
    args.timeoutMs,
  );
  switch (answer.kind) {
    case "reachable":
      return "reachable";
    case "refused":
      if (answer.status === 429) return "rate_limited";
      return answer.status === 403 && (answer.reason === undefined || answer.reason === NO_DIVISION_ACCESS)
        ? "unreachable"
        : "unknown";
    default:
      return "unknown";
  }
}

/** What a verified chain writes about its division (lease-transitions.ts: verified). */
export interface DivisionPin {
  /** The division consumers are given: the pinned one. */
  readonly division: number | null;
  /** Set only when this check pins the division for the first time. */
  readonly pinnedDivision?: number;
  readonly divisionPinnedBy?: DivisionPinnedBy;
}

export type DivisionHold =
  | { readonly kind: "keep"; readonly pin: DivisionPin }
  /** The chain was not verified: the lease has ended (or was lost) with this outcome. */
  | { readonly kind: "stop"; readonly outcome: VerifyOutcome };

/**
 * The division a connection keeps across identity checks: the pinned one, or for an item
 * verified before pinning existed, the one it was serving.
 */
export function pinnedDivisionOf(record: ChainRecord): number | undefined {
  return record.pinnedDivision ?? record.division ?? undefined;
}

/**
 * Run by an identity check that found the chain's own Exact user, before it writes the chain
 * ACTIVE. A heal or any later check never changes the pinned division: when `/current/Me` shows
 * another `CurrentDivision` (Exact's follows the company last opened in the browser), the user
 * must still reach the pinned one. Unreachable: REAUTH_REQUIRED (`division_unreachable`) with a
 * ReauthRequired event, the chain kept stored; rate limited: kept, reachable for now (below);
 * unknown: a failed check, not counted (the chain stays VERIFYING, retried later). Nothing pinned
 * yet: `/current/Me`'s division is pinned now.
 */
export async function holdPinnedDivision(
  deps: EngineDeps,
  session: LeaseSession,
  args: {
    readonly accessToken: string;
    /** How long a call with the access token may take before the token expires (ms). */
    readonly checkableMs: number;
    readonly me: ExactMe;
    readonly afterLogin: boolean;
  },
): Promise<DivisionHold> {
  const record = session.record;
  const { me } = args;
  const pinned = pinnedDivisionOf(record);
  if (pinned === undefined) {
    return {
      kind: "keep",
      pin:
        me.division === null
          ? { division: null }
          : {
              division: me.division,
              pinnedDivision: me.division,
              divisionPinnedBy: DivisionPinnedBy.Consent,
            },
    };
  }
  // Pin an item verified before pinning existed to the division it was serving.
  const pin: DivisionPin =
    record.pinnedDivision === undefined
      ? { division: pinned, pinnedDivision: pinned, divisionPinnedBy: DivisionPinnedBy.Consent }
      : { division: pinned };
  if (me.division === pinned) return { kind: "keep", pin };

  const timeoutMs = Math.min(deps.config.httpTimeoutMs, args.checkableMs, session.remainingMs());
  const reach =
    timeoutMs < MIN_DIVISION_CHECK_MS
      ? "unknown"
      : await checkPinnedDivision(deps, {
          baseUrl: record.baseUrl,
          accessToken: args.accessToken,
          division: pinned,
          timeoutMs,
        });
  const id = record.connectionId;
  if (reach === "reachable") return { kind: "keep", pin };
  if (reach === "rate_limited") {
    // The division's API budget is spent (by the consumers, most likely: 5,000 a day per app and
    // division), so Exact will not tell until it resets, at UTC midnight for the daily one.
    // Holding the chain VERIFYING that long protects nothing: consumers are only ever given the
    // pinned division (never Me's), and their calls to it meet the same 429 meanwhile. So the
    // division counts as reachable for now; a user who really lost it shows at the next check.
    deps.log.info("the pinned division's API budget is spent; its check is skipped this time", {
      connectionId: id,
      division: pinned,
    });
    return { kind: "keep", pin };
  }
  if (reach === "unknown") {
    const outcome = await checkFailed(
      deps,
      session,
      new ExactUnavailable(`could not tell whether the Exact user can open division ${pinned}`, {
        retryAfterSeconds: 5,
      }),
      { afterLogin: args.afterLogin, counts: false },
    );
    return { kind: "stop", outcome };
  }
  if (!(await session.finish(needsOperator(EventReason.DivisionUnreachable, deps.now())))) {
    return { kind: "stop", outcome: { kind: "superseded" } };
  }
  deps.log.warn("the chain's Exact user can no longer open the connection's pinned division", {
    connectionId: id,
    division: pinned,
    currentDivision: me.division,
  });
  await announce(deps, BrokerEventType.ReauthRequired, session, EventReason.DivisionUnreachable);
  return {
    kind: "stop",
    outcome: {
      kind: "failed",
      error: new ReauthRequired(
        `connection "${id}": Exact user ${me.userName} can no longer open division ${pinned}, the connection's pinned division ` +
          `(its current division in Exact is ${me.division ?? "none"}); the new chain is kept. Give the user access to division ${pinned} in Exact, ` +
          `then run: exact-broker heal --id ${id}; or pin another division: exact-broker connection set-division --id ${id} --division N`,
      ),
    },
  };
}
