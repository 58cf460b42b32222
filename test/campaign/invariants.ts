import { REJECTION_PROBE_MS } from "../../lib/chain/app-states.js";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { LOGIN_FAILURES_PER_HOUR } from "../../lib/chain/login-budget.js";
import { DISPATCH_LEAD_MS, REDISPATCH_AFTER_MS, SCHEDULE_TICK_MS } from "../../lib/chain/refresh-dispatch.js";
import { INTERNAL_ERROR } from "../../lib/handlers/error-boundary.js";
import { VEND_ERROR_TYPES } from "../../lib/handlers/token-vend-handler.js";

/**
 * A sampled status: a BLOCKED connection whose chain died (its re-check is then a login, like a
 * BROKEN chain's heal) is told apart from one that keeps its chain.
 */
export const CHAINLESS_BLOCKED = "BLOCKED without a chain";

/** Who held something (a token call, a login) and when, in fake-clock ms. */
export interface Interval {
  readonly owner: string;
  readonly startMs: number;
  readonly untilMs: number;
  /** The connection whose chain it was for (a case with one connection may leave it out). */
  readonly connectionId?: string;
}

/** A token call or a login's credentials post, as it started: who held the chain's lease then. */
export interface CallStart {
  readonly owner: string;
  /** The connection whose lease it needed (the one its holder held, or whose refresh token it sent). */
  readonly connectionId?: string;
  readonly what: "a token call" | "a login";
  readonly atMs: number;
  /** The request's own timeout: how long it may stay in flight. */
  readonly timeoutMs: number;
  readonly leaseOwner: string | undefined;
  readonly leaseUntilMs: number | undefined;
  /** Another holder's token call was still in flight (in real time) when this one started. */
  readonly whileInFlight: string | undefined;
}

/** An invocation that returned or threw (a crashed one never does), and what it left behind. */
export interface Returned {
  readonly owner: string;
  /** The item still named it as the lease's owner. */
  readonly leftLease: boolean;
  /**
   * Its lease-ending write was the call the campaign failed, or its lease-taking write landed and
   * the answer was lost (it cannot know it holds the lease): the lease may only expire.
   */
  readonly releaseFailed: boolean;
  /** It had received Exact's still-live chain, and the item did not hold it. */
  readonly droppedLiveChain: boolean;
}

export interface VendAnswered {
  readonly owner: string;
  readonly minValiditySeconds: number;
  readonly validityMs: number;
}

/**
 * A `/current/Me` call made while the holder's chain was ACTIVE or SUSPECT: the check of a token a
 * consumer reported refused (rejected-token-check.ts). An identity check is always of a chain
 * stored as VERIFYING (or a BLOCKED one's re-check), so it is never one of these.
 */
export interface AccessCheckCall {
  readonly owner: string;
  readonly connectionId: string;
  /** The chain's generation when the call started: the generation whose token it checked. */
  readonly generation: number;
  /** The hash of the access token it sent. */
  readonly tokenHash: string;
  /** Exact's own answer (HTTP status); undefined when the request never reached it (a crash). */
  readonly exactStatus?: number;
  /** The holder received Exact's answer (not lost, not timed out). */
  readonly delivered: boolean;
  /** Me refused the app, not the token ("Application Scope Violated"): it says nothing of the token. */
  readonly appRefused?: boolean;
}

/** A refresh (grant_type=refresh_token) as it started: the generation whose refresh token it sent. */
export interface RefreshCall {
  readonly owner: string;
  readonly connectionId: string;
  readonly generation: number;
  /** Made under a probe's lease: the one call an unknown outcome allows (invariant 5). */
  readonly probe: boolean;
  /**
   * Exact's actual answer (whatever reached the broker) refused it without processing it: too
   * early, throttled, an outage. The chain did not move, so a holder may ask again (the worker's
   * in-window retry, due-chain-work.ts): such a call is no refresh of its generation.
   */
  readonly refused: boolean;
}

/** What a vend answered, as token-vend's caller sees it. */
export type ReportedVendAnswer =
  | {
      readonly kind: "token";
      readonly generation: number;
      readonly tokenHash: string;
      readonly validityMs: number;
    }
  | {
      readonly kind: "error";
      /** The errorType: a BrokerError's name, or InternalError for anything else (toEdgeError). */
      readonly errorType: string;
      readonly retryAfterSeconds: number | undefined;
    };

/** A vend that reported a generation's access token refused by Exact (`rejectedGeneration`). */
export interface ReportedVend {
  readonly owner: string;
  readonly connectionId: string;
  readonly rejectedGeneration: number;
  readonly minValiditySeconds: number;
  /** The campaign's fault hit this invocation. */
  readonly faulted: boolean;
  /** Undefined: it never answered (it crashed). */
  readonly answer: ReportedVendAnswer | undefined;
}

/** A vend through token-vend under perConnection: its authorization (lib/auth/), then the vend door. */
export interface AuthorizedVend {
  readonly owner: string;
  /** The caller signed a valid identity and the table held its grant when the vend began. */
  readonly callerGranted: boolean;
  /** The invocation's calls before its authorization started, while it ran, and after it ended. */
  readonly callsBefore: readonly string[];
  readonly callsDuring: readonly string[];
  readonly callsAfter: readonly string[];
  /** The authorizer granted the vend; false when it refused, failed or never finished. */
  readonly granted: boolean;
  /** When it granted (fake-clock ms). */
  readonly decidedAtMs?: number;
  /** The table held the caller's grant when the authorizer granted. */
  readonly grantStored?: boolean;
  /** When the case last revoked the caller's grant, if it did. */
  readonly revokedAtMs?: number;
  /** `token`, the errorType the caller got, or undefined: the invocation never answered (it crashed). */
  readonly answer: string | undefined;
}

/** The connect flow's requests, as the browser (or Exact's redirect) makes them. */
export type ConnectStep = "GET /start" | "POST /start" | "GET /callback";

/** One request of the connect flow and what it answered. */
export interface ConnectRequest {
  readonly owner: string;
  readonly step: ConnectStep;
  /** Which of the case's links it was for: 1, the operator's first; 2, the one the user asked for next. */
  readonly link: number;
  /**
   * `page`, `redirect` (303 to Exact with a state), `completed` (the chain stored), a refusal's
   * reason code (`used`, …), an error's name; undefined: it never answered (it crashed).
   */
  readonly answer: string | undefined;
  /** The DynamoDB writes it made (attempted, the faulted one included). */
  readonly writes: readonly string[];
  /** Made in the recovery: the user's way on after the door's request. */
  readonly wayOn: boolean;
}

/** Everything the checker judges about one case, after its recovery. */
export interface CaseEvidence {
  readonly mode: "code" | "implicit";
  readonly tokenCalls: readonly Interval[];
  readonly logins: readonly Interval[];
  readonly callStarts: readonly CallStart[];
  readonly returned: readonly Returned[];
  readonly vends: readonly VendAnswered[];
  /**
   * Token calls whose outcome their holder never learnt (no answer, or an answer that proves
   * nothing: a 5xx other than 503, a 2xx without tokens), and holders that vanished with their note.
   */
  readonly unknownOutcomes: number;
  /** Token calls made while the lease was a probe's. */
  readonly probes: number;
  /** The fault left an outcome unknown: a lost or timed-out token call, or a holder gone with its note. */
  readonly lostAllowed: boolean;
  /** Each connection's generation after every invocation (and at each token call), in order. */
  readonly generations: Readonly<Record<string, readonly number[]>>;
  /** Statuses from the door's invocation on, of every connection of the case. */
  readonly statuses: readonly string[];
  /** Successful and failed logins at the simulator from the door's invocation on. */
  readonly loginSuccesses: number;
  readonly loginFailures: number;
  /** Log lines and events that carried a token or secret (what, never the value). */
  readonly leaks: readonly string[];
  /** Every connection of the case after recovery: the door's first. */
  readonly finals: readonly FinalState[];
  /** Vends through token-vend's authorization (the authorization doors; none elsewhere). */
  readonly authorizedVends: readonly AuthorizedVend[];
  /** Requests of the connect flow's /start and /callback (the connect doors; none elsewhere). */
  readonly connectRequests: readonly ConnectRequest[];
  /** `/current/Me` checks of a token reported refused (the rejected-generation doors; none elsewhere). */
  readonly accessChecks: readonly AccessCheckCall[];
  /** Every refresh of every connection of the case, from the door's setup on. */
  readonly refreshes: readonly RefreshCall[];
  /** Vends that reported a generation refused (the rejected-generation doors; none elsewhere). */
  readonly reportedVends: readonly ReportedVend[];
  /** Token calls sent with a client secret the app's state held as rejected when they started. */
  readonly rejectedSecretCalls: readonly RejectedSecretCall[];
  /** Every login, with where its connection stood before it. */
  readonly loginStarts: readonly LoginStart[];
  /** Each connection's pinned division after every invocation (and at each token call or login), in order. */
  readonly pins: Readonly<Record<string, readonly (number | undefined)[]>>;
  /** The divisions an operator pinned (`connection set-division`), by connection. */
  readonly operatorPins: Readonly<Record<string, readonly number[]>>;
  /** Token calls of the case's app that Exact's daily cap refused (the simulator's `dailyTokenCap` variant). */
  readonly dailyCapRefusals: number;
  /** Every new refresh token Exact issued a connection of the case, from the door's setup on. */
  readonly renewals?: readonly Renewal[];
  /** The refresh queue's doors (refresh-queue.test.ts); absent elsewhere. */
  readonly queue?: QueueFacts;
}

/** A token call sent with a client secret Exact had rejected for the app (app-states.ts `rejectedSecrets`). */
export interface RejectedSecretCall {
  readonly owner: string;
  readonly connectionId: string;
  readonly atMs: number;
  /** The rejection it was sent under: the secret's hash and when the rejection was recorded. */
  readonly rejection: string;
  readonly rejectedSinceMs: number;
}

/** A login (its first page), and the status its connection was last seen in before it. */
export interface LoginStart {
  readonly owner: string;
  readonly connectionId: string;
  /** A sampled status (CHAINLESS_BLOCKED for a BLOCKED connection without a chain); undefined if never seen. */
  readonly statusBefore: string | undefined;
}

/** Exact issued a connection's chain a new refresh token (a refresh, a probe, a login's code exchange). */
export interface Renewal {
  readonly owner: string;
  readonly connectionId: string;
  /** When Exact processed the request (fake-clock ms), whether or not its answer reached the holder. */
  readonly atMs: number;
}

/** The schedule that drives the refresh dispatcher: EventBridge, once a minute. */
export { SCHEDULE_TICK_MS };

/** One SendMessageBatch that reached the refresh queue (SQS took it). */
export interface QueueSend {
  readonly sender: string;
  readonly atMs: number;
  readonly messages: ReadonlyArray<{
    readonly connectionId: string;
    readonly dueAtMs: number;
    /** Only on an overdue chain's message: the claim that follows the send. */
    readonly redispatchAtMs?: number;
    readonly delaySeconds: number;
  }>;
  /** The sender got SQS's answer (false: lost on the way, or the sender died at it). */
  readonly answered: boolean;
}

/** A dispatcher's claim that DynamoDB carried out: the chain's due time moved to the re-dispatch time. */
export interface QueueClaim {
  readonly owner: string;
  readonly connectionId: string;
  readonly redispatchAtMs: number;
  readonly atMs: number;
}

/** A chain the case's refresh queue must see worked on: due for a refresh in its window, or for its keep-alive. */
export interface DueChain {
  readonly connectionId: string;
  readonly kind: "hot" | "keep-alive";
  readonly dueAtMs: number;
  /** Hot: its access token's expiry. Keep-alive: Exact's 30 days on its refresh token. */
  readonly expiresAtMs: number;
}

/** What a worker that returned did with a chain (a ChainRunOutcome: `refreshed`, `cooled`, `skipped`, …). */
export interface WorkOutcome {
  readonly owner: string;
  readonly connectionId: string;
  readonly outcome: string;
  readonly atMs: number;
}

/** The scheduled refresh at scale (refresh-dispatch.ts, refresh-worker.ts) as a case saw it. */
export interface QueueFacts {
  readonly sends: readonly QueueSend[];
  readonly claims: readonly QueueClaim[];
  readonly dueChains: readonly DueChain[];
  readonly workOutcomes: readonly WorkOutcome[];
  /** When the door's invocation started, and when it was over (its hang's competitor included). */
  readonly doorStartedAtMs: number;
  readonly doorEndedAtMs: number;
  /** The fault hit the chains' work itself (a worker's invocation), not the dispatcher's. */
  readonly workFaulted: boolean;
}

/** Where one connection of the case stands after recovery. */
export interface FinalState {
  readonly connectionId: string;
  readonly status: string | undefined;
  /** The hash of the refresh token the item's ciphertext holds (decrypted), not its audit hash. */
  readonly refreshHash: string | undefined;
  /** The refresh token Exact would accept now for the connection's app and its user (the simulator's liveRefreshHash). */
  readonly liveRefreshHash: string | null;
  readonly accessValidityMs: number;
  readonly leaseLive: boolean;
  /** The Exact user the item says it holds (`exactUserName`, from /current/Me). */
  readonly heldUser: string | undefined;
  /** The Exact user the connection is meant to hold: its own, or the one the door gave it. */
  readonly expectedUser: string;
  /**
   * Generations the case committed on this connection that its history does not record (no
   * entry of an outcome that bumps the generation, in a history item or on the item itself).
   */
  readonly unrecordedGenerations?: readonly number[];
}

/** What the door's clean run showed. */
export interface Expectations {
  /** The door's clean run logs in (a heal, an implicit login, a chain broken by its setup). */
  readonly loginDoor: boolean;
  /** Successful logins of the clean run, door and recovery. */
  readonly baselineLogins: number;
}

/**
 * The invariants every case must keep (design.md), judged in one place. Returns the violations,
 * each a sentence naming what broke; empty when the case kept them all.
 */
export function checkInvariants(evidence: CaseEvidence, expected: Expectations): string[] {
  return [
    ...oneCallAtATime(evidence),
    ...liveChain(evidence, expected),
    ...oneProbePerUnknownOutcome(evidence),
    ...loginBudget(evidence),
    ...noLeaseOutlivesItsExpiry(evidence),
    ...generationOnlyGrows(evidence),
    ...vendsKeepTheirValidity(evidence),
    ...persistFirst(evidence),
    ...noSecretInLogsOrEvents(evidence),
    ...everyGenerationRecorded(evidence),
    ...authorizationBeforeChainWork(evidence),
    ...vendRefusalsTyped(evidence),
    ...revokedGrantsExpire(evidence),
    ...confirmPageWritesNothing(evidence),
    ...linkSpentOnce(evidence),
    ...clearWayOn(evidence),
    ...oneAccessCheckPerGeneration(evidence),
    ...refusedTokenNeverServedAgain(evidence),
    ...oneRefreshPerReportedGeneration(evidence),
    ...reportedVendsAnswerTyped(evidence),
    ...rejectedAppCallsPaced(evidence),
    ...noLoginForABlockedUser(evidence),
    ...pinnedDivisionKept(evidence),
    ...nothingPastTheDailyCap(evidence),
    ...queuedBeforeClaimed(evidence),
    ...dueChainsWorkedOn(evidence),
    ...oneRefreshPerQueuedGeneration(evidence),
  ];
}

/**
 * The dispatcher queues first and claims second (refresh-dispatch.ts): a claim lands only after
 * the same dispatcher's send of that chain's message, with that claim, came back accepted, so a
 * chain is never claimed without a message on its way. A chain is queued only once due within
 * the dispatcher's lead, and its message is delivered no earlier than it is due.
 */
function queuedBeforeClaimed(evidence: CaseEvidence): string[] {
  const queue = evidence.queue;
  if (!queue) return [];
  const found: string[] = [];
  for (const claim of queue.claims) {
    const queued = queue.sends.some(
      (send) =>
        send.sender === claim.owner &&
        send.answered &&
        send.atMs <= claim.atMs &&
        send.messages.some(
          (m) => m.connectionId === claim.connectionId && m.redispatchAtMs === claim.redispatchAtMs,
        ),
    );
    if (!queued)
      found.push(
        `${claim.owner} claimed connection ${claim.connectionId} (due moved to ${claim.redispatchAtMs}) without a message it had queued`,
      );
  }
  for (const send of queue.sends) {
    for (const m of send.messages) {
      if (m.dueAtMs > send.atMs + DISPATCH_LEAD_MS)
        found.push(
          `${send.sender} queued connection ${m.connectionId} ${(m.dueAtMs - send.atMs) / 1000} s before it was due`,
        );
      if (send.atMs + m.delaySeconds * 1000 < m.dueAtMs)
        found.push(
          `${send.sender}'s message for connection ${m.connectionId} is delivered ${(m.dueAtMs - send.atMs) / 1000 - m.delaySeconds} s before it is due`,
        );
    }
  }
  return found;
}

/**
 * Every chain due in the case is worked on (Exact issues it a new refresh token): a hot chain
 * before its access token expires, an idle one before Exact's 30 days. When the fault hit the
 * work itself (a worker died, stalled or failed with the chain claimed), the claim's re-dispatch
 * brings it back: worked on by the next dispatch, REDISPATCH_AFTER_MS after its due time (or
 * the door's end, if later) and a schedule tick. A hot chain is then still refreshed, its token
 * expired or not: its hotness is judged when its work fell due (due-chain-work.ts).
 */
function dueChainsWorkedOn(evidence: CaseEvidence): string[] {
  const queue = evidence.queue;
  if (!queue) return [];
  const found: string[] = [];
  for (const chain of queue.dueChains) {
    const renewed = (evidence.renewals ?? [])
      .filter((r) => r.connectionId === chain.connectionId && r.atMs >= queue.doorStartedAtMs)
      .map((r) => r.atMs);
    const which = `${chain.kind} connection ${chain.connectionId}`;
    if (renewed.length === 0) {
      found.push(`${which}, due ${chain.dueAtMs}, was never worked on`);
      continue;
    }
    const atMs = Math.min(...renewed);
    const redispatchedByMs =
      Math.max(chain.dueAtMs, queue.doorEndedAtMs) + REDISPATCH_AFTER_MS + SCHEDULE_TICK_MS;
    const byMs = queue.workFaulted ? Math.max(chain.expiresAtMs, redispatchedByMs) : chain.expiresAtMs;
    if (atMs > byMs)
      found.push(
        `${which} was worked on ${(atMs - chain.dueAtMs) / 1000} s after it was due, ${(atMs - byMs) / 1000} s too late`,
      );
  }
  return found;
}

/**
 * A queued chain's generation is refreshed at most once (a probe after an unknown outcome aside,
 * invariant 5): a duplicate message (a second tick's, SQS's second delivery) meets the lease or
 * finds the generation moved, and is skipped.
 */
function oneRefreshPerQueuedGeneration(evidence: CaseEvidence): string[] {
  const queue = evidence.queue;
  if (!queue) return [];
  const queued = new Set([
    ...queue.dueChains.map((c) => c.connectionId),
    ...queue.sends.flatMap((s) => s.messages.map((m) => m.connectionId)),
  ]);
  const byGeneration = new Map<string, string[]>();
  for (const call of evidence.refreshes) {
    if (call.probe || call.refused || !queued.has(call.connectionId)) continue;
    const key = `${call.connectionId}#${call.generation}`;
    byGeneration.set(key, [...(byGeneration.get(key) ?? []), call.owner]);
  }
  return [...byGeneration]
    .filter(([, owners]) => owners.length > 1)
    .map(([key, owners]) => {
      const [connectionId, generation] = key.split("#");
      return `queued connection ${connectionId}'s generation ${generation} was refreshed ${owners.length} times: ${owners.join(", ")}`;
    });
}

/**
 * A client secret Exact rejected for the app (`invalid_client`, or "Application Scope Violated"
 * at the token endpoint) is sent again only as the app's paced probe (outage-pacing.ts gate):
 * the first REJECTION_PROBE_MS after the rejection, the next ones as far apart. A probe's call
 * follows its claim inside the claimant's lease, so two calls may come closer than their claims
 * by a lease: half the interval leaves room for any lease.
 */
function rejectedAppCallsPaced(evidence: CaseEvidence): string[] {
  const byRejection = new Map<string, RejectedSecretCall[]>();
  for (const call of evidence.rejectedSecretCalls) {
    byRejection.set(call.rejection, [...(byRejection.get(call.rejection) ?? []), call]);
  }
  const found: string[] = [];
  for (const calls of byRejection.values()) {
    const sorted = [...calls].sort((a, b) => a.atMs - b.atMs);
    sorted.forEach((call, i) => {
      const previous = sorted[i - 1];
      const soon = previous
        ? call.atMs - previous.atMs < REJECTION_PROBE_MS / 2
        : call.atMs - call.rejectedSinceMs < REJECTION_PROBE_MS;
      if (!soon) return;
      const since = previous ? `${previous.owner}'s` : "the rejection";
      found.push(
        `${call.owner} sent connection ${call.connectionId}'s rejected client secret ${(call.atMs - (previous?.atMs ?? call.rejectedSinceMs)) / 1000} s after ${since}, not as the app's paced probe`,
      );
    });
  }
  return found;
}

/**
 * No login can fix a blocked user (issue 9): a connection BLOCKED with its chain never logs in.
 * Only one whose chain Exact ended (CHAINLESS_BLOCKED) re-checks by a login.
 */
function noLoginForABlockedUser(evidence: CaseEvidence): string[] {
  return evidence.loginStarts
    .filter((login) => login.statusBefore === ChainStatus.Blocked)
    .map(
      (login) =>
        `${login.owner} logged in for connection ${login.connectionId}, BLOCKED with its chain (no login can fix a blocked user)`,
    );
}

/**
 * Once pinned, a connection's division changes only by an operator's `connection set-division`:
 * a heal or identity check never moves it to the `CurrentDivision` Exact shows (issue 9).
 */
function pinnedDivisionKept(evidence: CaseEvidence): string[] {
  const found: string[] = [];
  for (const [connectionId, pins] of Object.entries(evidence.pins)) {
    const allowed = new Set(evidence.operatorPins[connectionId] ?? []);
    let pinned: number | undefined;
    for (const pin of pins) {
      if (pinned === undefined || pin === pinned || (pin !== undefined && allowed.has(pin))) {
        pinned = pin ?? pinned;
        continue;
      }
      found.push(
        `connection ${connectionId}'s pinned division went from ${pinned} to ${pin ?? "none"}, which no operator pinned`,
      );
      break;
    }
  }
  return found;
}

/** Nothing is sent past Exact's daily token-call cap: the broker counts and stops at it (token-call-cap.ts). */
function nothingPastTheDailyCap(evidence: CaseEvidence): string[] {
  return evidence.dailyCapRefusals > 0
    ? [`Exact's daily token-call cap refused ${evidence.dailyCapRefusals} call(s): the broker sent past it`]
    : [];
}

/**
 * A token reported refused is checked with `/current/Me` at most once per generation, whoever
 * reports it and however often (rejected-token-check.ts): every check is a call Exact may count
 * against the app's error limit (10 an hour per endpoint).
 */
function oneAccessCheckPerGeneration(evidence: CaseEvidence): string[] {
  const byGeneration = new Map<string, string[]>();
  for (const check of evidence.accessChecks) {
    const key = `${check.connectionId}#${check.generation}`;
    byGeneration.set(key, [...(byGeneration.get(key) ?? []), check.owner]);
  }
  return [...byGeneration]
    .filter(([, owners]) => owners.length > 1)
    .map(([key, owners]) => {
      const [connectionId, generation] = key.split("#");
      return `connection ${connectionId}'s generation ${generation} was checked with /current/Me ${owners.length} times: ${owners.join(", ")}`;
    });
}

/**
 * A vend that reports a generation refused answers that generation's token again only after
 * Exact accepted it at `/current/Me` and the checker received the answer, and never a token Exact
 * refused there (access-check.ts, servesCurrent).
 */
function refusedTokenNeverServedAgain(evidence: CaseEvidence): string[] {
  const found: string[] = [];
  for (const vend of evidence.reportedVends) {
    const answer = vend.answer;
    if (answer?.kind !== "token" || answer.generation !== vend.rejectedGeneration) continue;
    const checks = evidence.accessChecks.filter(
      (check) =>
        check.connectionId === vend.connectionId && check.tokenHash === answer.tokenHash && !check.appRefused,
    );
    if (checks.some((check) => check.exactStatus !== undefined && check.exactStatus !== 200)) {
      found.push(
        `${vend.owner} reported generation ${vend.rejectedGeneration} refused and was served its token, which /current/Me refused`,
      );
    } else if (!checks.some((check) => check.exactStatus === 200 && check.delivered)) {
      found.push(
        `${vend.owner} reported generation ${vend.rejectedGeneration} refused and was served its token, which no /current/Me check accepted`,
      );
    }
  }
  return found;
}

/**
 * A generation a consumer reported refused is refreshed at most once (a probe after an unknown
 * outcome aside, invariant 5): the report leads to one token call of that generation, however
 * many consumers report it and whatever failed on the way.
 */
function oneRefreshPerReportedGeneration(evidence: CaseEvidence): string[] {
  const reported = new Set(evidence.reportedVends.map((v) => `${v.connectionId}#${v.rejectedGeneration}`));
  const byGeneration = new Map<string, string[]>();
  for (const call of evidence.refreshes) {
    const key = `${call.connectionId}#${call.generation}`;
    if (call.probe || call.refused || !reported.has(key)) continue;
    byGeneration.set(key, [...(byGeneration.get(key) ?? []), call.owner]);
  }
  return [...byGeneration]
    .filter(([, owners]) => owners.length > 1)
    .map(([key, owners]) => {
      const [connectionId, generation] = key.split("#");
      return `connection ${connectionId}'s reported generation ${generation} was refreshed ${owners.length} times: ${owners.join(", ")}`;
    });
}

/** What a vend reporting a refused token of a live chain may answer besides a token: wait and retry. */
const RETRY_LATER: ReadonlySet<string> = new Set(["ChainBusy", "Throttled", "ExactUnavailable"]);

/**
 * A vend reporting a refused token of a live chain answers a token, or a retryable error with
 * `retryAfterSeconds` (invariant 12); InternalError (retry after a second) only when the
 * campaign's fault hit that very invocation. Its token's validity is judged with every vend's.
 */
function reportedVendsAnswerTyped(evidence: CaseEvidence): string[] {
  const found: string[] = [];
  for (const vend of evidence.reportedVends) {
    const answer = vend.answer;
    if (answer?.kind !== "error") continue;
    if (answer.errorType === INTERNAL_ERROR && vend.faulted) continue;
    if (!RETRY_LATER.has(answer.errorType)) {
      found.push(
        `${vend.owner} reported generation ${vend.rejectedGeneration} refused and got ${answer.errorType}`,
      );
    } else if ((answer.retryAfterSeconds ?? 0) < 1) {
      found.push(
        `${vend.owner} reported generation ${vend.rejectedGeneration} refused and got ${answer.errorType} without retryAfterSeconds`,
      );
    }
  }
  return found;
}

/** The calls an authorization makes: STS's GetCallerIdentity and the grant reads. */
const AUTHORIZATION_CALLS: ReadonlySet<string> = new Set(["sts:GetCallerIdentity", "dynamo:GetItemCommand"]);

/**
 * A vend's caller is verified and granted before any chain work: no call but the authorization's
 * before the authorizer granted, none at all after it refused or failed, and never a token
 * without its grant (README, "Who gets which connection").
 */
function authorizationBeforeChainWork(evidence: CaseEvidence): string[] {
  const found: string[] = [];
  for (const vend of evidence.authorizedVends) {
    const work = [
      ...vend.callsBefore,
      ...vend.callsDuring.filter((name) => !AUTHORIZATION_CALLS.has(name)),
      ...(vend.granted ? [] : vend.callsAfter),
    ];
    if (work.length > 0)
      found.push(`${vend.owner} made ${work.join(", ")} for a caller not yet verified and granted`);
    if (vend.answer === "token" && !vend.granted)
      found.push(`${vend.owner} served a token to a caller its authorization did not grant`);
  }
  return found;
}

/** What token-vend may answer: a token, or an errorType of its contract (README, "token-vend"). */
const VEND_ANSWERS: ReadonlySet<string> = new Set(["token", ...VEND_ERROR_TYPES, INTERNAL_ERROR]);

/**
 * Every vend that answers gets a token or a typed error, and AccessDenied only for the caller's
 * fault: a caller with a valid identity and a grant gets InternalError (STS or DynamoDB failed),
 * never a refusal it would act on by asking an operator for a grant it has.
 */
function vendRefusalsTyped(evidence: CaseEvidence): string[] {
  const found: string[] = [];
  for (const { owner, answer, callerGranted } of evidence.authorizedVends) {
    if (answer === undefined) continue;
    if (!VEND_ANSWERS.has(answer)) found.push(`${owner} answered ${answer}, not a typed error`);
    if (answer === "AccessDenied" && callerGranted)
      found.push(`${owner} answered AccessDenied to a verified, granted caller: the fault was the broker's`);
  }
  return found;
}

/** README, "Who gets which connection": a revoke reaches warm containers within a minute. */
const REVOKE_REACHES_WARM_CONTAINERS_MS = 60_000;

/** A grant absent from the table is never granted, a revoked one only from a cache within its minute. */
function revokedGrantsExpire(evidence: CaseEvidence): string[] {
  const found: string[] = [];
  for (const vend of evidence.authorizedVends) {
    if (!vend.granted || vend.grantStored !== false) continue;
    if (vend.revokedAtMs === undefined) {
      found.push(`${vend.owner} granted a caller whose grant was never stored`);
      continue;
    }
    const since = (vend.decidedAtMs ?? 0) - vend.revokedAtMs;
    if (since >= REVOKE_REACHES_WARM_CONTAINERS_MS)
      found.push(
        `${vend.owner} granted a grant revoked ${since / 1000} s before, from a cache past its minute`,
      );
  }
  return found;
}

/** Opening a link (`GET /start`: a preview, a scanner, the user) writes nothing: it spends nothing. */
function confirmPageWritesNothing(evidence: CaseEvidence): string[] {
  return evidence.connectRequests
    .filter((request) => request.step === "GET /start" && request.writes.length > 0)
    .map(
      (request) =>
        `${request.owner}'s GET /start of link ${request.link} wrote: ${request.writes.join(", ")}`,
    );
}

/** A link is spent at most once: one press, of any number, gets a state and the 303 to Exact. */
function linkSpentOnce(evidence: CaseEvidence): string[] {
  const pressedThrough = new Map<number, string[]>();
  for (const request of evidence.connectRequests) {
    if (request.step !== "POST /start" || request.answer !== "redirect") continue;
    pressedThrough.set(request.link, [...(pressedThrough.get(request.link) ?? []), request.owner]);
  }
  return [...pressedThrough]
    .filter(([, owners]) => owners.length > 1)
    .map(
      ([link, owners]) =>
        `link ${link} was spent ${owners.length} times: states went to ${owners.join(", ")}`,
    );
}

/** What each request of the user's way on may answer. */
const WAY_ON: Readonly<Record<ConnectStep, readonly string[]>> = {
  "GET /start": ["page"],
  "POST /start": ["redirect", "used"],
  "GET /callback": ["completed"],
};

/**
 * After the door's request, whatever became of its answer, the user's way on is clear: the page
 * opens, a new press is sent to Exact or says `used` (ask for a new link), and a state the
 * browser was sent to Exact with completes.
 */
function clearWayOn(evidence: CaseEvidence): string[] {
  return evidence.connectRequests
    .filter((request) => request.wayOn && !WAY_ON[request.step].includes(request.answer ?? ""))
    .map(
      (request) =>
        `${request.owner}: the user's way on, ${request.step} of link ${request.link}, answered ${request.answer ?? "nothing"}`,
    );
}

/**
 * Every generation a case committed has its entry in the connection's history after recovery,
 * whatever the fault (history-store.ts: the commit carries its entry, a later commit writes what
 * a crash left unwritten).
 */
function everyGenerationRecorded(evidence: CaseEvidence): string[] {
  const several = evidence.finals.length > 1;
  return evidence.finals
    .filter((final) => (final.unrecordedGenerations ?? []).length > 0)
    .map(
      (final) =>
        `${several ? `connection ${final.connectionId}: ` : ""}generation(s) ${(final.unrecordedGenerations ?? []).join(", ")} committed without a history entry`,
    );
}

/**
 * Never two token calls or two logins in flight for one chain (invariant 1): each starts under
 * its holder's live lease, none overlaps another holder's in fake time, and none starts while
 * another's is in flight in real time.
 */
function oneCallAtATime(evidence: CaseEvidence): string[] {
  const found: string[] = [];
  for (const start of evidence.callStarts) {
    if (start.leaseOwner !== start.owner || start.atMs >= (start.leaseUntilMs ?? 0)) {
      const until =
        start.leaseUntilMs === undefined ? "" : `, until ${start.leaseUntilMs - start.atMs} ms from then`;
      found.push(
        `${start.owner} started ${start.what} without holding the live lease (lease: ${start.leaseOwner ?? "none"}${until})`,
      );
    }
    if (start.whileInFlight !== undefined) {
      found.push(
        `${start.owner} started ${start.what} while ${start.whileInFlight}'s token call was in flight`,
      );
    }
  }
  return [...found, ...overlaps(evidence.tokenCalls, "token calls"), ...overlaps(evidence.logins, "logins")];
}

/** Two holders' intervals on one connection's chain that overlap. */
function overlaps(intervals: readonly Interval[], what: string): string[] {
  const found: string[] = [];
  intervals.forEach((a, i) => {
    for (const b of intervals.slice(i + 1)) {
      if (a.connectionId !== b.connectionId) continue;
      if (a.owner !== b.owner && a.startMs < b.untilMs && b.startMs < a.untilMs) {
        found.push(
          `${what} of ${a.owner} [${a.startMs}, ${a.untilMs}] and ${b.owner} [${b.startMs}, ${b.untilMs}] overlap`,
        );
      }
    }
  });
  return found;
}

/**
 * Each connection's stored chain is Exact's live chain of the user it is meant to hold (its own,
 * or the one the door gave it), and no two connections hold one user. A chain went BROKEN (or,
 * BLOCKED, lost its chain) only because an answer was lost in transit, and then one login healed
 * it (a stalled holder's rescue
 * may heal it without one: LeaseSession.commitRefresh). A door that logs in by itself may need
 * one more login for a fault (its own login failed), never more.
 */
function liveChain(evidence: CaseEvidence, expected: Expectations): string[] {
  const found: string[] = [];
  const several = evidence.finals.length > 1;
  for (const final of evidence.finals) {
    const which = several ? `connection ${final.connectionId}: ` : "";
    if (final.status !== ChainStatus.Active) {
      found.push(`${which}after recovery the chain is ${final.status ?? "gone"}, not ACTIVE`);
    } else if (evidence.mode === "code" && final.refreshHash !== final.liveRefreshHash) {
      found.push(`${which}after recovery the stored refresh token is not the one Exact would accept`);
    } else if (evidence.mode === "implicit" && final.accessValidityMs <= 0) {
      found.push(`${which}after recovery the implicit chain holds no valid access token`);
    }
    if (final.status === ChainStatus.Active && final.heldUser !== final.expectedUser) {
      found.push(
        `${which}after recovery the chain is Exact user ${final.heldUser ?? "(none)"}'s, not ${final.expectedUser}'s`,
      );
    }
  }
  const holders = new Map<string, string[]>();
  for (const final of evidence.finals) {
    if (final.heldUser === undefined || final.status !== ChainStatus.Active) continue;
    holders.set(final.heldUser, [...(holders.get(final.heldUser) ?? []), final.connectionId]);
  }
  for (const [user, connections] of holders) {
    if (connections.length > 1)
      found.push(`connections ${connections.join(" and ")} both hold Exact user ${user}`);
  }
  const logins = evidence.loginSuccesses;
  if (expected.loginDoor) {
    if (logins > expected.baselineLogins + 1) {
      found.push(`${logins} logins for one fault; the clean run needed ${expected.baselineLogins}`);
    }
    return found;
  }
  const broke = evidence.statuses.some(
    (s) => s === ChainStatus.Broken || s === ChainStatus.Healing || s === CHAINLESS_BLOCKED,
  );
  if (broke && !evidence.lostAllowed)
    found.push("the chain went BROKEN although no answer was lost in transit");
  if (broke && logins > 1) found.push(`the chain went BROKEN and ${logins} logins followed, not one`);
  if (!broke && logins > 0) found.push(`${logins} login(s) although the chain never went BROKEN`);
  return found;
}

/** At most one probe per unknown outcome (invariant 5: never a retry loop). */
function oneProbePerUnknownOutcome(evidence: CaseEvidence): string[] {
  return evidence.probes > evidence.unknownOutcomes
    ? [`${evidence.probes} probes for ${evidence.unknownOutcomes} unknown outcome(s)`]
    : [];
}

/** No login beyond the budget (invariant 7): failed logins lock accounts. */
function loginBudget(evidence: CaseEvidence): string[] {
  return evidence.loginFailures > LOGIN_FAILURES_PER_HOUR
    ? [`${evidence.loginFailures} failed logins; the budget is ${LOGIN_FAILURES_PER_HOUR} an hour`]
    : [];
}

/**
 * No lease outlives its expiry: an invocation that returned left no lease of its own (unless the
 * write that ends it was the one that failed: then it can only expire), and none is live at the end.
 */
function noLeaseOutlivesItsExpiry(evidence: CaseEvidence): string[] {
  const found = evidence.returned
    .filter((r) => r.leftLease && !r.releaseFailed)
    .map((r) => `${r.owner} returned and left its lease behind`);
  const several = evidence.finals.length > 1;
  for (const final of evidence.finals) {
    if (final.leaseLive)
      found.push(
        `${several ? `connection ${final.connectionId}: ` : ""}a lease is still live after recovery`,
      );
  }
  return found;
}

function generationOnlyGrows(evidence: CaseEvidence): string[] {
  const found: string[] = [];
  const several = Object.keys(evidence.generations).length > 1;
  for (const [connectionId, generations] of Object.entries(evidence.generations)) {
    generations.forEach((generation, i) => {
      const before = generations[i - 1];
      if (before !== undefined && generation < before) {
        found.push(
          `${several ? `connection ${connectionId}: ` : ""}the generation went back from ${before} to ${generation}`,
        );
      }
    });
  }
  return found;
}

/** No vend answers less validity than it asked for (invariant 12). */
function vendsKeepTheirValidity(evidence: CaseEvidence): string[] {
  return evidence.vends
    .filter((v) => v.validityMs < v.minValiditySeconds * 1000)
    .map((v) => `${v.owner} vended a token valid ${v.validityMs} ms; it asked for ${v.minValiditySeconds} s`);
}

/**
 * Whatever Exact returns that holds a refresh token is persisted (invariants 4 and 13): a holder
 * that received the chain Exact still accepts, and returned, left it stored.
 */
function persistFirst(evidence: CaseEvidence): string[] {
  return evidence.returned
    .filter((r) => r.droppedLiveChain)
    .map((r) => `${r.owner} received Exact's live chain and returned without persisting it`);
}

/** No token or secret in a log line or an event (invariant 8). */
function noSecretInLogsOrEvents(evidence: CaseEvidence): string[] {
  return evidence.leaks.map((what) => `${what} carried a token or secret`);
}
