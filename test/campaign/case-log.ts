import { type ChainRecord, type ChainStatus, LeasePurpose } from "../../lib/chain/chain-record.js";
import type { VendAnswer } from "../../lib/chain/token-cache.js";
import { hashToken } from "../../lib/chain/token-seal.js";
import type { HttpOutcome } from "../../lib/exact/http.js";
import { type ExactCall, ExactCallType, type ExactWatch } from "./exact-tap.js";
import { Fault, type FaultHit, type Tap } from "./fault-plan.js";
import type { CallStart, Interval, Returned, VendAnswered } from "./invariants.js";
import type { CampaignConnection, World } from "./world.js";

/**
 * What one case observed, recorded as it happens: every token call and login with its holder
 * and fake-time interval, the lease at the moment each starts (read with the unfaulted client),
 * the generation and status after every invocation, every vend answer, the unknown outcomes and
 * probes. Facts only: the checker (invariants.ts) judges them once the case is over.
 */
export class CaseLog implements ExactWatch {
  readonly #world: World;
  readonly #connection: CampaignConnection;
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
  readonly generations: number[] = [];
  readonly statuses: string[] = [];
  #watchingStatus = false;
  /** Refresh-token hashes Exact issued, by the holder that received them. */
  readonly #issued = new Map<string, string[]>();
  #inflightToken: string | undefined;

  constructor(world: World, connection: CampaignConnection) {
    this.#world = world;
    this.#connection = connection;
  }

  /** One span per holder: from its first login page to its last. */
  get logins(): Interval[] {
    return [...this.#loginSpans.values()];
  }

  /** From the door's invocation on, statuses count (the heal door's setup is BROKEN on purpose). */
  watchStatus(): void {
    this.#watchingStatus = true;
  }

  async starts(tap: Tap, call: ExactCall, atMs: number): Promise<void> {
    if (call.type === ExactCallType.LoginPage) {
      const span = this.#loginSpans.get(tap.owner);
      this.#loginSpans.set(tap.owner, { owner: tap.owner, startMs: span?.startMs ?? atMs, untilMs: atMs });
    }
    if (call.type !== ExactCallType.Token && !call.credentials) return;
    const item = await this.#world.item(this.#connection.connectionId);
    if (item) this.#sample(item.generation, item.status);
    const token = call.type === ExactCallType.Token;
    this.callStarts.push({
      owner: tap.owner,
      what: token ? "a token call" : "a login",
      atMs,
      timeoutMs: call.request.timeoutMs,
      leaseOwner: item?.leaseOwner,
      leaseUntilMs: item?.leaseUntilMs,
      whileInFlight: token ? this.#inflightToken : undefined,
    });
    if (!token) return;
    if (item?.leasePurpose === LeasePurpose.Probe) this.probes += 1;
    this.#inflightToken = tap.owner;
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
      this.#loginSpans.set(tap.owner, { ...interval, startMs: span?.startMs ?? result.startMs });
      return;
    }
    if (call.type !== ExactCallType.Token) return;
    this.#inflightToken = undefined;
    this.tokenCalls.push(interval);
    if (result.delivered?.kind === "unknown") this.unknownOutcomes += 1;
    const issued = issuedRefreshHash(result.actual);
    if (issued !== undefined && result.delivered === result.actual) {
      this.#issued.set(tap.owner, [...(this.#issued.get(tap.owner) ?? []), issued]);
    }
  }

  /** A fault is about to act on `tap`'s call: is an outcome about to become unknown? */
  async faultHit(tap: Tap, hit: FaultHit): Promise<void> {
    const { fault, name } = hit.plan;
    const item = await this.#world.item(this.#connection.connectionId);
    // A holder that stops under its lease leaves its write-ahead note: to everyone else, its
    // token call (or login) may have happened. A verifier's note is exempt: it only calls Me.
    const noteLeft =
      (fault === Fault.Crash || fault === Fault.Hang) &&
      item?.leaseOwner === tap.owner &&
      item.leasePurpose !== LeasePurpose.Verify;
    if (noteLeft) this.unknownOutcomes += 1;
    const tokenAnswerLost = (fault === Fault.Lost || fault === Fault.Hang) && name === "exact:token";
    if (noteLeft || tokenAnswerLost) this.lostAllowed = true;
  }

  /** An invocation returned (or threw): what it left behind. */
  async returned(tap: Tap): Promise<ChainRecord | undefined> {
    const item = await this.#world.item(this.#connection.connectionId);
    if (!item) return undefined;
    this.#sample(item.generation, item.status);
    const live = this.#world.chainStats(this.#connection)?.liveRefreshHash ?? null;
    const received = this.#issued.get(tap.owner) ?? [];
    this.returns.push({
      owner: tap.owner,
      leftLease: item.leaseOwner === tap.owner,
      releaseFailed: tap.hit?.plan.fault === Fault.Exception && tap.hit.endsLease,
      droppedLiveChain: received.some((hash) => hash === live && item.refreshHash !== hash),
    });
    return item;
  }

  async crashed(): Promise<ChainRecord | undefined> {
    const item = await this.#world.item(this.#connection.connectionId);
    if (item) this.#sample(item.generation, item.status);
    return item;
  }

  vendAnswered(owner: string, minValiditySeconds: number, answer: VendAnswer): void {
    const validityMs = Date.parse(answer.expiresAt) - this.#world.clock.now();
    this.vends.push({ owner, minValiditySeconds, validityMs });
  }

  #sample(generation: number, status: ChainStatus): void {
    this.generations.push(generation);
    if (this.#watchingStatus) this.statuses.push(status);
  }
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
