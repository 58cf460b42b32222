import { type ChainRecord, ChainStatus, LeasePurpose } from "../../lib/chain/chain-record.js";
import type { VendAnswer } from "../../lib/chain/token-cache.js";
import { ODD_ANSWERS_BEFORE_SUSPECT } from "../../lib/chain/token-refusals.js";
import { hashToken } from "../../lib/chain/token-seal.js";
import {
  classifyTokenResponse,
  SCOPE_VIOLATED,
  type TokenOutcome,
  UnavailableCause,
} from "../../lib/exact/classify-token-response.js";
import type { HttpOutcome, HttpRequest } from "../../lib/exact/http.js";
import { type ExactCall, ExactCallType, type ExactWatch } from "./exact-tap.js";
import { DYNAMO_WRITES, Fault, type FaultHit, type Tap } from "./fault-plan.js";
import {
  type AccessCheckCall,
  type AuthorizedVend,
  type CallStart,
  CHAINLESS_BLOCKED,
  type ConnectRequest,
  type ConnectStep,
  type Interval,
  type LoginStart,
  type RefreshCall,
  type RejectedSecretCall,
  type Renewal,
  type ReportedVend,
  type Returned,
  type VendAnswered,
} from "./invariants.js";
import type { CampaignConnection, World } from "./world.js";

/** What the log needs of its case: the connections (the door's first; a door may add peers) and Exact's chains of it. */
export interface CaseScope {
  readonly connections: readonly CampaignConnection[];
  /** Exact's live refresh-token hashes of every (app, user) pair of the case. */
  liveRefreshHashes(): Set<string>;
}

/** The case's items, by connection ID (a connection whose item is gone is left out). */
export type Items = ReadonlyMap<string, ChainRecord>;

/** A vend through token-vend as it goes, filled in by the scenario that makes it (authorization-scenarios.ts). */
export interface AuthorizedVendLog {
  readonly tap: Tap;
  readonly callerGranted: boolean;
  readonly revokedAtMs: number | undefined;
  /** How many calls the invocation had made when its authorization started, and when it ended. */
  authorizingFrom?: number;
  authorizedUntil?: number;
  granted: boolean;
  decidedAtMs?: number;
  grantStored?: boolean;
  answer?: string;
}

/** A vend reporting a refused generation as it goes, filled in by the scenario that makes it (rejected-scenarios.ts). */
export interface ReportedVendLog {
  readonly tap: Tap;
  readonly connectionId: string;
  readonly rejectedGeneration: number;
  readonly minValiditySeconds: number;
  answer?: ReportedVend["answer"];
}

/** A request of the connect flow as it goes, filled in by the scenario that makes it (connect-scenarios.ts). */
export interface ConnectRequestLog {
  readonly tap: Tap;
  readonly step: ConnectStep;
  readonly link: number;
  readonly wayOn: boolean;
  answer?: string;
}

/**
 * What one case observed, recorded as it happens: every token call and login with its holder
 * and fake-time interval, the lease at the moment each starts (read with the unfaulted client),
 * the generation and status after every invocation, every vend answer, the unknown outcomes and
 * probes. Facts only: the checker (invariants.ts) judges them once the case is over.
 *
 * A case may have several connections (a hand-over, outage pacing): each call is attributed to
 * the connection whose lease its holder held (or, for a refresh, whose refresh token it sent),
 * and each connection's lease, token calls and generation are judged on their own.
 */
export class CaseLog implements ExactWatch {
  readonly #world: World;
  readonly #scope: CaseScope;
  readonly tokenCalls: Interval[] = [];
  readonly #loginSpans = new Map<string, Interval>();
  readonly callStarts: CallStart[] = [];
  readonly returns: Returned[] = [];
  readonly vends: VendAnswered[] = [];
  readonly leaks: string[] = [];
  /** Problems of the campaign itself (a run that did not follow its clean run's calls). */
  readonly harness: string[] = [];
  unknownOutcomes = 0;
  probes = 0;
  lostAllowed = false;
  readonly generations: Record<string, number[]> = {};
  readonly statuses: string[] = [];
  readonly authorizedVends: AuthorizedVendLog[] = [];
  readonly connectRequests: ConnectRequestLog[] = [];
  readonly reportedVends: ReportedVendLog[] = [];
  readonly refreshes: RefreshCall[] = [];
  /** Each time Exact issued a connection's chain a new refresh token, whoever got the answer. */
  readonly renewals: Renewal[] = [];
  readonly rejectedSecretCalls: RejectedSecretCall[] = [];
  readonly loginStarts: LoginStart[] = [];
  readonly pins: Record<string, Array<number | undefined>> = {};
  /** Divisions an operator pinned, by connection (the set-division door records its own). */
  readonly operatorPins: Record<string, number[]> = {};
  /** Each connection's status as last sampled. */
  readonly #lastStatus = new Map<string, string>();
  readonly #accessChecks: AccessCheckCall[] = [];
  /** Odd token answers delivered (every holder's). */
  #oddAnswers = 0;
  /** Holders whose token call in flight is a probe. */
  readonly #probing = new Set<Tap>();
  /** Each holder's access check in flight (its index in #accessChecks). */
  readonly #accessCheckOf = new Map<Tap, number>();
  #watchingStatus = false;
  /** Refresh-token hashes Exact issued, by the holder that received them. */
  readonly #issued = new Map<string, string[]>();
  /** The token call in flight on each connection's chain: its holder. */
  readonly #inflightToken = new Map<string, string>();
  /** The connection each holder's token call in flight was attributed to. */
  readonly #tokenCallOf = new Map<Tap, string>();
  /** Where each token call in flight sits in `refreshes` (its answer may mark it refused). */
  readonly #refreshOf = new Map<Tap, number>();

  constructor(world: World, scope: CaseScope) {
    this.#world = world;
    this.#scope = scope;
  }

  /** One span per holder: from its first login page to its last. */
  get logins(): Interval[] {
    return [...this.#loginSpans.values()];
  }

  /** From the door's invocation on, statuses count (the heal door's setup is BROKEN on purpose). */
  watchStatus(): void {
    this.#watchingStatus = true;
  }

  /** Every connection's item, read with the unfaulted client. */
  async items(): Promise<Items> {
    const read = await Promise.all(this.#scope.connections.map((c) => this.#world.item(c.connectionId)));
    const items = new Map<string, ChainRecord>();
    for (const item of read) if (item) items.set(item.connectionId, item);
    return items;
  }

  /** An operator pinned `division` on `connectionId` (or is about to): the checker allows that pin. */
  operatorPinned(connectionId: string, division: number): void {
    this.operatorPins[connectionId] = [...(this.operatorPins[connectionId] ?? []), division];
  }

  async starts(tap: Tap, call: ExactCall, atMs: number): Promise<void> {
    if (call.type === ExactCallType.LoginPage) {
      const span = this.#loginSpans.get(tap.owner);
      if (!span) await this.#loginStarts(tap);
      this.#loginSpans.set(tap.owner, {
        ...span,
        owner: tap.owner,
        startMs: span?.startMs ?? atMs,
        untilMs: atMs,
      });
    }
    if (call.type === ExactCallType.Me) {
      await this.#meStarts(tap, call.request);
      return;
    }
    if (call.type !== ExactCallType.Token && !call.credentials) return;
    const items = await this.items();
    this.#sampleAll(items);
    const connectionId = this.#attribute(tap, call.request, items);
    const item = items.get(connectionId);
    const token = call.type === ExactCallType.Token;
    this.callStarts.push({
      owner: tap.owner,
      connectionId,
      what: token ? "a token call" : "a login",
      atMs,
      timeoutMs: call.request.timeoutMs,
      leaseOwner: item?.leaseOwner,
      leaseUntilMs: item?.leaseUntilMs,
      whileInFlight: token ? this.#inflightToken.get(connectionId) : undefined,
    });
    if (!token) {
      const span = this.#loginSpans.get(tap.owner);
      if (span) this.#loginSpans.set(tap.owner, { ...span, connectionId });
      return;
    }
    const probe = item?.leasePurpose === LeasePurpose.Probe;
    if (probe) {
      this.probes += 1;
      this.#probing.add(tap);
    }
    if (item && sentRefreshHash(call.request) !== undefined) {
      this.#refreshOf.set(tap, this.refreshes.length);
      this.refreshes.push({
        owner: tap.owner,
        connectionId,
        generation: item.generation,
        probe,
        refused: false,
      });
    }
    this.#inflightToken.set(connectionId, tap.owner);
    this.#tokenCallOf.set(tap, connectionId);
    // After the call is marked in flight: a concurrent call's start must see it.
    await this.#rejectedSecretSent(tap, call.request, connectionId, atMs);
  }

  ends(
    tap: Tap,
    call: ExactCall,
    result: {
      readonly startMs: number;
      readonly untilMs: number;
      readonly delivered?: HttpOutcome;
      readonly actual?: HttpOutcome;
    },
  ): void {
    const interval = { owner: tap.owner, startMs: result.startMs, untilMs: result.untilMs };
    if (call.type === ExactCallType.LoginPage) {
      const span = this.#loginSpans.get(tap.owner);
      this.#loginSpans.set(tap.owner, { ...span, ...interval, startMs: span?.startMs ?? result.startMs });
      return;
    }
    if (call.type === ExactCallType.Me) {
      const at = this.#accessCheckOf.get(tap);
      const check = at === undefined ? undefined : this.#accessChecks[at];
      this.#accessCheckOf.delete(tap);
      if (at === undefined || !check) return;
      const { actual, delivered } = result;
      this.#accessChecks[at] = {
        ...check,
        ...(actual?.kind === "response" ? { exactStatus: actual.status } : {}),
        appRefused: actual?.kind === "response" && SCOPE_VIOLATED.test(actual.body),
        delivered: actual !== undefined && delivered === actual,
      };
      return;
    }
    if (call.type !== ExactCallType.Token) return;
    const connectionId = this.#tokenCallOf.get(tap);
    this.#tokenCallOf.delete(tap);
    if (connectionId !== undefined) this.#inflightToken.delete(connectionId);
    this.tokenCalls.push({ ...interval, ...(connectionId !== undefined ? { connectionId } : {}) });
    // No answer, or one that proves nothing (a 5xx, a 2xx without tokens): the broker's own reading.
    const read = result.delivered && classifyTokenResponse(result.delivered, 0);
    if (read && read.kind === "outcome_unknown") this.unknownOutcomes += 1;
    // Odd answers (a bare 4xx page, an unknown OAuth error) that persist are treated as an unknown
    // outcome after ODD_ANSWERS_BEFORE_SUSPECT in a row (token-refusals.ts): one probe each run.
    if (read && read.kind === "unavailable" && ODD_CAUSES.has(read.cause)) {
      this.#oddAnswers += 1;
      if (this.#oddAnswers % ODD_ANSWERS_BEFORE_SUSPECT === 0) this.unknownOutcomes += 1;
    }
    // A probe that Exact did not process (the app rejected, an outage's 503, 429 or bare page) is
    // not spent: the chain stays SUSPECT and probes again later (issue 9), or resends at once
    // with a new client secret after `invalid_client`.
    if (this.#probing.delete(tap) && read && notProcessed(read)) this.probes -= 1;
    const refresh = this.#refreshOf.get(tap);
    this.#refreshOf.delete(tap);
    const answer = result.actual && classifyTokenResponse(result.actual, 0);
    if (refresh !== undefined && answer && (answer.kind === "too_early" || notProcessed(answer))) {
      const call = this.refreshes[refresh];
      if (call) this.refreshes[refresh] = { ...call, refused: true };
    }
    const issued = issuedRefreshHash(result.actual);
    if (issued !== undefined && connectionId !== undefined) {
      // Exact processed the request when it went out (the holder's clock may have moved since).
      this.renewals.push({ owner: tap.owner, connectionId, atMs: result.startMs });
    }
    if (issued !== undefined && result.delivered === result.actual) {
      this.#issued.set(tap.owner, [...(this.#issued.get(tap.owner) ?? []), issued]);
    }
  }

  /** A fault is about to act on `tap`'s call: is an outcome about to become unknown? */
  async faultHit(tap: Tap, hit: FaultHit): Promise<void> {
    const { fault, name } = hit.plan;
    // A holder that stops under its lease leaves its write-ahead note: to everyone else, its
    // token call (or login) may have happened. A verifier's note is exempt: it only calls Me.
    const noteLeft = (fault === Fault.Crash || fault === Fault.Hang) && holdsNote(await this.items(), tap);
    if (noteLeft) this.unknownOutcomes += 1;
    const tokenAnswerLost = (fault === Fault.Lost || fault === Fault.Hang) && name === "exact:token";
    if (noteLeft || tokenAnswerLost) this.lostAllowed = true;
  }

  /**
   * A DynamoDB write whose answer is lost has been made. If it took a lease (ChainStore.acquire),
   * its holder does not know it holds it: the lease and its write-ahead note stay until they
   * expire, and to everyone else it is a holder that vanished under its note, as after a crash:
   * its token call may have happened (the next holder probes; a probe's note means BROKEN).
   */
  async landed(tap: Tap, hit: FaultHit): Promise<void> {
    if (!hit.takesLease || !holdsNote(await this.items(), tap)) return;
    this.unknownOutcomes += 1;
    this.lostAllowed = true;
  }

  /** An invocation returned (or threw): what it left behind. */
  async returned(tap: Tap): Promise<Items> {
    const items = await this.items();
    this.#sampleAll(items);
    const live = this.#scope.liveRefreshHashes();
    const stored = new Set<string>();
    for (const item of items.values()) {
      if (item.refreshHash) stored.add(item.refreshHash);
      if (item.verification?.retired?.refreshHash) stored.add(item.verification.retired.refreshHash);
    }
    const received = this.#issued.get(tap.owner) ?? [];
    const hit = tap.hit;
    this.returns.push({
      owner: tap.owner,
      leftLease: [...items.values()].some((item) => item.leaseOwner === tap.owner),
      releaseFailed:
        (hit?.plan.fault === Fault.Exception && hit.endsLease) ||
        (hit?.plan.fault === Fault.Lost && hit.takesLease),
      droppedLiveChain: received.some((hash) => live.has(hash) && !stored.has(hash)),
    });
    return items;
  }

  async crashed(): Promise<Items> {
    const items = await this.items();
    this.#sampleAll(items);
    return items;
  }

  vendAnswered(owner: string, minValiditySeconds: number, answer: VendAnswer): void {
    const validityMs = Date.parse(answer.expiresAt) - this.#world.clock.now();
    this.vends.push({ owner, minValiditySeconds, validityMs });
  }

  /** Each token-vend invocation's calls, split where its authorization started and ended. */
  authorizedVendFacts(): AuthorizedVend[] {
    return this.authorizedVends.map((vend) => {
      const calls = vend.tap.sequence;
      const from = vend.authorizingFrom ?? calls.length;
      const until = vend.authorizedUntil ?? calls.length;
      return {
        owner: vend.tap.owner,
        callerGranted: vend.callerGranted,
        callsBefore: calls.slice(0, from),
        callsDuring: calls.slice(from, until),
        callsAfter: calls.slice(until),
        granted: vend.granted,
        decidedAtMs: vend.decidedAtMs,
        grantStored: vend.grantStored,
        revokedAtMs: vend.revokedAtMs,
        answer: vend.answer,
      };
    });
  }

  /** The `/current/Me` checks of a token reported refused, each with Exact's answer. */
  get accessChecks(): readonly AccessCheckCall[] {
    return this.#accessChecks;
  }

  /** Each vend that reported a refused generation, and whether the campaign's fault hit it. */
  reportedVendFacts(): ReportedVend[] {
    return this.reportedVends.map((vend) => ({
      owner: vend.tap.owner,
      connectionId: vend.connectionId,
      rejectedGeneration: vend.rejectedGeneration,
      minValiditySeconds: vend.minValiditySeconds,
      faulted: vend.tap.hit !== undefined,
      answer: vend.answer,
    }));
  }

  /** Each connect request with the DynamoDB writes its invocation made. */
  connectRequestFacts(): ConnectRequest[] {
    return this.connectRequests.map((request) => ({
      owner: request.tap.owner,
      step: request.step,
      link: request.link,
      answer: request.answer,
      writes: request.tap.sequence.filter((name) => DYNAMO_WRITES.includes(name)),
      wayOn: request.wayOn,
    }));
  }

  /**
   * The connection a token call or login is for: the one whose lease its holder holds; if it
   * holds several (a scheduled run works on chains side by side) or none (a call without the
   * lease), the one whose refresh token it sends; else the door's connection.
   */
  #attribute(tap: Tap, request: HttpRequest, items: Items): string {
    const { connections } = this.#scope;
    const held = connections.filter((c) => items.get(c.connectionId)?.leaseOwner === tap.owner);
    const only = held[0];
    if (only && held.length === 1) return only.connectionId;
    const sent = sentRefreshHash(request);
    const named = sent && connections.find((c) => items.get(c.connectionId)?.refreshHash === sent);
    return (named || only || connections[0])?.connectionId ?? "";
  }

  /**
   * A `/current/Me` call is about to go out: if the chain it is for (the one whose lease its
   * holder holds, else the door's) is ACTIVE or SUSPECT, it is the check of a token reported
   * refused, of the generation stored now.
   */
  async #meStarts(tap: Tap, request: HttpRequest): Promise<void> {
    const items = await this.items();
    const { connections } = this.#scope;
    const held = connections.find((c) => items.get(c.connectionId)?.leaseOwner === tap.owner);
    const item = items.get((held ?? connections[0])?.connectionId ?? "");
    if (item?.status !== ChainStatus.Active && item?.status !== ChainStatus.Suspect) return;
    const token = /^Bearer +(\S+)$/i.exec(request.headers?.authorization ?? "")?.[1] ?? "";
    this.#accessCheckOf.set(tap, this.#accessChecks.length);
    this.#accessChecks.push({
      owner: tap.owner,
      connectionId: item.connectionId,
      generation: item.generation,
      tokenHash: hashToken(token),
      delivered: false,
    });
  }

  /**
   * A token call is about to go out: if the client secret it sends is one the app's state holds
   * as rejected, it is recorded with that rejection (the secret only as its hash).
   */
  async #rejectedSecretSent(
    tap: Tap,
    request: HttpRequest,
    connectionId: string,
    atMs: number,
  ): Promise<void> {
    const form = new URLSearchParams(request.body ?? "");
    const secret = form.get("client_secret");
    const clientId = form.get("client_id");
    if (!secret || !clientId) return;
    const secretHash = hashToken(secret);
    const rejected = (await this.#world.app(clientId)).rejectedSecrets?.[secretHash];
    if (!rejected) return;
    this.rejectedSecretCalls.push({
      owner: tap.owner,
      connectionId,
      atMs,
      rejection: `${secretHash}@${rejected.sinceMs}`,
      rejectedSinceMs: rejected.sinceMs,
    });
  }

  /** A holder's first login page: its connection (the one whose lease it holds) and the status seen before. */
  async #loginStarts(tap: Tap): Promise<void> {
    const items = await this.items();
    const { connections } = this.#scope;
    const held =
      connections.find((c) => items.get(c.connectionId)?.leaseOwner === tap.owner) ?? connections[0];
    if (!held) return;
    this.loginStarts.push({
      owner: tap.owner,
      connectionId: held.connectionId,
      statusBefore: this.#lastStatus.get(held.connectionId),
    });
  }

  #sampleAll(items: Items): void {
    for (const item of items.values()) {
      const chainless = item.status === ChainStatus.Blocked && item.refreshCt === undefined;
      this.#sample(item, chainless ? CHAINLESS_BLOCKED : item.status);
    }
  }

  #sample(item: ChainRecord, status: string): void {
    const { connectionId } = item;
    const generations = this.generations[connectionId] ?? [];
    generations.push(item.generation);
    this.generations[connectionId] = generations;
    const pins = this.pins[connectionId] ?? [];
    pins.push(item.pinnedDivision);
    this.pins[connectionId] = pins;
    this.#lastStatus.set(connectionId, status);
    if (this.#watchingStatus) this.statuses.push(status);
  }
}

/** Exact's answers that say the request was not processed: the app rejected, an outage (outage-pacing.ts). */
function notProcessed(outcome: TokenOutcome): boolean {
  return (
    outcome.kind === "client_rejected" ||
    outcome.kind === "rate_limited" ||
    (outcome.kind === "unavailable" &&
      (outcome.cause === UnavailableCause.Overloaded || outcome.cause === UnavailableCause.Maintenance))
  );
}

/** Causes of an "unavailable" answer that token-refusals.ts counts as odd. */
const ODD_CAUSES: ReadonlySet<string> = new Set([
  UnavailableCause.Maintenance,
  UnavailableCause.Unrecognised,
]);

/** The holder leaves a write-ahead note that may stand for an Exact call (any lease but a verifier's). */
function holdsNote(items: Items, tap: Tap): boolean {
  return [...items.values()].some(
    (item) => item.leaseOwner === tap.owner && item.leasePurpose !== LeasePurpose.Verify,
  );
}

/** The hash of the refresh token a refresh request sends, if it is one. */
function sentRefreshHash(request: HttpRequest): string | undefined {
  if (!request.body) return undefined;
  const form = new URLSearchParams(request.body);
  const token = form.get("grant_type") === "refresh_token" ? form.get("refresh_token") : null;
  return token ? hashToken(token) : undefined;
}

/** The hash of the refresh token in a token response, whatever its status (a refusal may carry one). */
function issuedRefreshHash(outcome: HttpOutcome | undefined): string | undefined {
  if (outcome?.kind !== "response") return undefined;
  try {
    const body = JSON.parse(outcome.body) as { refresh_token?: unknown };
    return typeof body.refresh_token === "string" ? hashToken(body.refresh_token) : undefined;
  } catch {
    return undefined;
  }
}
