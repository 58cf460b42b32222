import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type Broker, createBroker } from "../../lib/broker.js";
import { accessValidityMs, type ChainRecord, ChainStatus } from "../../lib/chain/chain-record.js";
import type { EngineLog } from "../../lib/chain/engine-deps.js";
import { GENERATION_OUTCOMES } from "../../lib/chain/history-entry.js";
import { loginBlockedFor } from "../../lib/chain/login-budget.js";
import type { RefreshQueue } from "../../lib/chain/refresh-dispatch.js";
import { CLOCK_SKEW_BOUND_MS } from "../../lib/chain/timing.js";
import type { VendAnswer } from "../../lib/chain/token-cache.js";
import { hashToken } from "../../lib/chain/token-seal.js";
import { MAX_HISTORY_LIMIT } from "../../lib/cli/history-command.js";
import { BrokerError } from "../../lib/errors.js";
import type { BrokerEvent } from "../../lib/events/broker-events.js";
import { OneExactIdentityDriver } from "../../lib/exact/login/one-exact-identity-driver.js";
import { ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import { INTERNAL_ERROR } from "../../lib/handlers/error-boundary.js";
import { VEND_ERROR_TYPES } from "../../lib/handlers/token-vend-handler.js";
import type { LinkKeySource } from "../../lib/onboarding/link-key-source.js";
import { CampaignQueue, tappedQueue } from "./campaign-queue.js";
import { CaseLog, type CaseScope, type Items, type ReportedVendLog } from "./case-log.js";
import { tappedSend } from "./exact-tap.js";
import {
  type FaultPlan,
  type StopAfter,
  Tap,
  type TapHooks,
  tappedCipher,
  tappedDynamo,
  tappedEvents,
  tappedHealTrigger,
  tappedLinkKeys,
  tappedSecrets,
} from "./fault-plan.js";
import { type CaseEvidence, checkInvariants, type Expectations, type FinalState } from "./invariants.js";
import type { CampaignConnection, World } from "./world.js";

/** One Lambda invocation: a broker built afresh, every external call of it through one tap. */
export interface Invocation {
  readonly broker: Broker;
  readonly tap: Tap;
  /** The tapped DynamoDB client, for what a handler builds beside the broker (the connect flow's nonces). */
  readonly dynamo: DynamoDBClient;
  readonly linkKeys: LinkKeySource;
  /** The case's refresh queue (campaign-queue.ts) through the tap: the broker's `dispatch` sends here. */
  readonly refreshQueue: RefreshQueue;
}

export type Role = "setup" | "door" | "competitor" | "retry" | "recovery";

type Ending<T> =
  | { readonly kind: "returned"; readonly value: T }
  | { readonly kind: "threw"; readonly error: unknown }
  | { readonly kind: "crashed" };

/** How an invocation ended (a crashed one was abandoned), with its tap: the calls it made, the fault that hit. */
export type InvocationEnd<T> = Ending<T> & { readonly tap: Tap };

/** A door of the engine as one scenario: how to get a chain there, the call itself, and a rival. */
export interface Door {
  readonly name: string;
  readonly mode: "code" | "implicit";
  /** Brings a fresh connection to where the door has work to do (clean invocations). */
  setup(run: CaseRun): Promise<void>;
  /** The door's call, in the invocation the campaign faults. */
  act(run: CaseRun, invocation: Invocation): Promise<unknown>;
  /** The competing fresh invocation a hang lets in: the same door, or a vend. */
  compete(run: CaseRun): Promise<unknown>;
  /**
   * What the door's caller does once the door's invocation is over, whatever became of it, before
   * the recovery: a consumer that asks again (role `retry`).
   */
  followUp?(run: CaseRun): Promise<void>;
  /**
   * What an operator (or the person connecting) does in the recovery where the engine leaves a
   * connection to one (its REAUTH_REQUIRED after an operator's heal failed, a seed that never
   * happened, a connect link pressed): true when it acted. Asked before the automatic steps, for
   * every connection not settled.
   */
  operatorStep?(run: CaseRun, connection: CampaignConnection, item: ChainRecord): Promise<boolean>;
}

/** Rounds of fresh invocations the recovery may take before the case counts as not settling. */
const RECOVERY_ROUNDS = 6;
/**
 * How long the door's and a competitor's vends wait for another holder's work (a heal they
 * triggered) before ChainBusy. Nobody else runs meanwhile in this harness, so a longer wait
 * would only poll more; setup and recovery vends do not wait at all.
 */
const VEND_WAIT_MS = 1_000;

export interface CaseResult {
  /** The door invocation's calls, in order. */
  readonly sequence: readonly string[];
  readonly violations: readonly string[];
  readonly loginSuccesses: number;
  /** The planned fault was applied (false: the run never reached the planned call). */
  readonly hit: boolean;
  readonly trace: readonly string[];
}

/**
 * One case: a fresh connection, the door's setup, the door's invocation with at most one fault,
 * the recovery, and the checker. Every invocation of the case (setup, door, competitor,
 * recovery) goes through a tap and is observed; only the door's is faulted.
 */
export class CaseRun implements CaseScope {
  readonly world: World;
  readonly door: Door;
  readonly label: string;
  readonly log: CaseLog;
  /** The case's refresh queue (SQS): what the dispatchers queued and claimed, the messages on their way. */
  readonly queue: CampaignQueue;
  /** The door's invocation's tap, once it is over: its calls, and the fault that hit. */
  doorTap: Tap | undefined;
  /** The door's connection. */
  readonly connection: CampaignConnection;
  /** Every connection of the case: the door's first, then the peers its setup added (same app, other users). */
  readonly connections: CampaignConnection[];
  /** Exact users of the case's app that no connection of the case was added for (a door's second user). */
  readonly #otherUsers: string[] = [];
  /** The Exact user each connection is meant to hold, where a door gives it another than its own. */
  readonly #expectedUsers = new Map<string, string>();
  /** Door-specific values the setup leaves for the act (a code, a connect state). */
  readonly scratch: { code?: string; state?: string; user?: string; atMs?: number } = {};
  readonly events: BrokerEvent[] = [];
  readonly triggers: string[] = [];
  /** One line per invocation: how it ended and where it left the chain (for a failure's message). */
  readonly trace: string[] = [];
  #invocations = 0;
  /** Invocations started and not yet over (a crashed one is over once abandoned). */
  #running = 0;
  #lastRead: Items | undefined;
  /** What each stored refresh-token ciphertext holds (its hash), decrypted once. */
  readonly #decrypted = new Map<string, string | undefined>();
  readonly #hooks: TapHooks;

  private constructor(world: World, door: Door, label: string, connection: CampaignConnection) {
    this.world = world;
    this.door = door;
    this.label = label;
    this.connection = connection;
    this.connections = [connection];
    this.log = new CaseLog(world, this);
    this.queue = new CampaignQueue(world.clock);
    this.#hooks = {
      faultHit: (tap, hit) => this.log.faultHit(tap, hit),
      landed: (tap, hit) => this.log.landed(tap, hit),
      hang: (tap) => this.#hang(tap),
      mismatch: (_tap, index, name) =>
        this.log.harness.push(`call ${index} is ${name} here, not what the clean run made there`),
    };
  }

  /** Runs the whole case and judges it. */
  static async execute(
    world: World,
    door: Door,
    label: string,
    plan: FaultPlan | undefined,
    expected: Expectations | undefined,
  ): Promise<CaseResult> {
    world.sim.reset();
    world.clock.alignToTotpStep();
    const connection = await world.addConnection(door.mode);
    const run = new CaseRun(world, door, label, connection);
    try {
      await door.setup(run);
      const before = run.#logins();
      run.log.watchStatus();
      const { tap } = await run.invoke("door", (invocation) => door.act(run, invocation), plan);
      run.doorTap = tap;
      await door.followUp?.(run);
      await run.#recover();
      const after = run.#logins();
      const loginSuccesses = after.success - before.success;
      const evidence = await run.#evidence(loginSuccesses, after.failed - before.failed);
      const baseline = expected ?? { loginDoor: loginSuccesses > 0, baselineLogins: loginSuccesses };
      const violations = [...run.log.harness, ...checkInvariants(evidence, baseline)];
      if (plan && !tap.hit) violations.push(`the run never reached call ${plan.atCall} (${plan.name})`);
      return {
        sequence: tap.sequence,
        violations,
        loginSuccesses,
        hit: tap.hit !== undefined,
        trace: run.trace,
      };
    } finally {
      for (const c of run.connections) await world.removeConnection(c);
    }
  }

  /**
   * A second connection of the door's app, for another Exact user (its own): the one that holds
   * the user a hand-over goes to, or another chain of the app during an outage.
   */
  async addPeer(): Promise<CampaignConnection> {
    const peer = await this.world.addConnection(this.connection.mode, this.connection);
    this.connections.push(peer);
    return peer;
  }

  /**
   * Removes a peer's item and nothing else, as an interrupted `connection remove` leaves it: its
   * guard still names it. Its Exact user stays one of the case's.
   */
  async dropPeer(peer: CampaignConnection): Promise<void> {
    const at = this.connections.indexOf(peer);
    if (at <= 0) throw new Error(`${peer.connectionId} is not a peer of the case`);
    await this.world.removeConnection(peer);
    this.connections.splice(at, 1);
    this.#otherUsers.push(peer.username);
    this.forgetItem();
  }

  /** Another Exact user of the door's app, without a connection of its own; returns its user name. */
  addExactUser(): string {
    const { username } = this.world.addExactUser();
    this.#otherUsers.push(username);
    return username;
  }

  /** The door gives `connection` another Exact user than its own: recovery and checks expect that one. */
  expectUser(connection: CampaignConnection, username: string): void {
    this.#expectedUsers.set(connection.connectionId, username);
  }

  /** The Exact user `connection` is meant to hold. */
  expectedUser(connection: CampaignConnection): string {
    return this.#expectedUsers.get(connection.connectionId) ?? connection.username;
  }

  /** The case's Exact users: every connection's own, and the others a door added. */
  get users(): string[] {
    return [...new Set([...this.connections.map((c) => c.username), ...this.#otherUsers])];
  }

  liveRefreshHashes(): Set<string> {
    const live = new Set<string>();
    for (const username of this.users) {
      const hash = this.world.chainStats(this.connection, username)?.liveRefreshHash;
      if (hash) live.add(hash);
    }
    return live;
  }

  /** Successful and failed logins at the simulator, of every Exact user of the case. */
  #logins(): { success: number; failed: number } {
    let success = 0;
    let failed = 0;
    for (const username of this.users) {
      const counts = this.world.loginStats(username);
      success += counts?.success ?? 0;
      failed +=
        (counts?.bad_password ?? 0) +
        (counts?.bad_totp ?? 0) +
        (counts?.totp_reused ?? 0) +
        (counts?.locked ?? 0) +
        (counts?.unknown_user ?? 0);
    }
    return { success, failed };
  }

  /**
   * Runs `work` as one invocation; a crashed one is abandoned, never awaited. `plan` faults one
   * of its calls (the door's invocation); `stopAfter` makes it die right after a chosen call (a
   * setup that leaves what a crash there would).
   */
  async invoke<T>(
    role: Role,
    work: (invocation: Invocation) => Promise<T>,
    plan?: FaultPlan,
    stopAfter?: StopAfter,
  ): Promise<InvocationEnd<T>> {
    this.#invocations += 1;
    this.#running += 1;
    const tap = new Tap({
      owner: `${this.label}/${role}-${this.#invocations}`,
      ...(plan ? { plan } : {}),
      ...(stopAfter ? { stopAfter } : {}),
      hooks: this.#hooks,
      sleep: this.world.clock.sleep,
    });
    const waits = role === "door" || role === "competitor" || role === "retry";
    const invocation = this.#invocation(tap, waits ? VEND_WAIT_MS : 0);
    const finished = work(invocation).then(
      (value): Ending<T> => ({ kind: "returned", value }),
      (error: unknown): Ending<T> => ({ kind: "threw", error }),
    );
    let end = await Promise.race([finished, tap.crashedSignal.then((): Ending<T> => ({ kind: "crashed" }))]);
    // A hang or crash at a synchronous call (the heal trigger) acts at the holder's next call;
    // one that returned before making another still runs it now.
    if (end.kind !== "crashed") await tap.drain();
    if (tap.crashed) end = { kind: "crashed" };
    const items = end.kind === "crashed" ? await this.log.crashed() : await this.log.returned(tap);
    this.#running -= 1;
    this.#lastRead = items;
    const hit = tap.hit ? ` [${tap.hit.plan.fault} at call ${tap.hit.plan.atCall} ${tap.hit.plan.name}]` : "";
    const how = end.kind === "threw" ? `threw ${describeError(end.error)}` : end.kind;
    const where = this.connections.map((c) => {
      const item = items.get(c.connectionId);
      const state = `${item?.status ?? "gone"} generation ${item?.generation ?? "-"}`;
      return this.connections.length > 1 ? `${c.connectionId} ${state}` : state;
    });
    this.trace.push(`${tap.owner}${hit}: ${how} -> ${where.join(", ")} [${tap.sequence.join(" ")}]`);
    return { ...end, tap };
  }

  /** A vend (of the door's connection, or `connection`) whose answer is checked for the validity it asked for. */
  async vend(
    invocation: Invocation,
    minValiditySeconds: number,
    connection: CampaignConnection = this.connection,
  ): Promise<VendAnswer> {
    const answer = await invocation.broker.vend.vend(connection.connectionId, minValiditySeconds);
    this.log.vendAnswered(invocation.tap.owner, minValiditySeconds, answer);
    return answer;
  }

  /**
   * A vend reporting that Exact refused `rejectedGeneration`'s access token (token-vend's
   * `rejectedGeneration`), recorded with what its caller gets: the token (also checked for the
   * validity asked for), or the errorType and retryAfterSeconds token-vend's edge would answer.
   * @param vend the call itself (a rogue door's, in checker.test.ts); the broker's vend door by default
   */
  async vendReporting(
    invocation: Invocation,
    minValiditySeconds: number,
    rejectedGeneration: number,
    vend: () => Promise<VendAnswer> = () =>
      invocation.broker.vend.vend(this.connection.connectionId, minValiditySeconds, { rejectedGeneration }),
  ): Promise<VendAnswer> {
    const entry: ReportedVendLog = {
      tap: invocation.tap,
      connectionId: this.connection.connectionId,
      rejectedGeneration,
      minValiditySeconds,
    };
    this.log.reportedVends.push(entry);
    try {
      const answer = await vend();
      this.log.vendAnswered(invocation.tap.owner, minValiditySeconds, answer);
      entry.answer = {
        kind: "token",
        generation: answer.generation,
        tokenHash: hashToken(answer.accessToken),
        validityMs: Date.parse(answer.expiresAt) - this.world.clock.now(),
      };
      return answer;
    } catch (error) {
      // As token-vend's edge answers it (error-boundary.ts): a type outside the contract is InternalError.
      const typed = error instanceof BrokerError && VEND_ERROR_TYPES.has(error.name);
      entry.answer = {
        kind: "error",
        errorType: typed ? error.name : INTERNAL_ERROR,
        retryAfterSeconds: typed ? error.retryAfterSeconds : 1,
      };
      throw error;
    }
  }

  /** Seeds `connection` with a fresh code of the user it is meant to hold, as `connection seed` does. */
  seed(invocation: Invocation, connection: CampaignConnection = this.connection): Promise<unknown> {
    const code = this.world.authorize(connection, this.expectedUser(connection));
    return invocation.broker.onboarding.seed(connection.connectionId, code);
  }

  /** After a write outside the engine (a setup's corruption): the next `item()` reads again. */
  forgetItem(): void {
    this.#lastRead = undefined;
  }

  /**
   * A connection's item (the door's by default), read with the unfaulted client; the read an
   * invocation's end made is reused while no invocation runs (nothing else writes the items).
   */
  async item(connection: CampaignConnection = this.connection): Promise<ChainRecord> {
    const { connectionId } = connection;
    const item =
      this.#running === 0 && this.#lastRead?.has(connectionId)
        ? this.#lastRead.get(connectionId)
        : await this.world.item(connectionId);
    if (!item) throw new Error(`connection ${connectionId} is gone`);
    return item;
  }

  #invocation(tap: Tap, vendWaitMs: number): Invocation {
    const { world } = this;
    const clock = world.clock;
    const send = tappedSend(tap, clock, this.log);
    const dynamo = tappedDynamo(world.dynamo, tap, (name, input) =>
      this.queue.landed(tap.owner, name, input),
    );
    const refreshQueue = tappedQueue(this.queue, tap);
    const broker = createBroker(world.stack.env, {
      dynamo,
      refreshQueue,
      cipher: tappedCipher(world.cipher, tap),
      secrets: tappedSecrets(world.secrets, tap),
      oauth: new ExactOAuthClient({ send, now: clock.now }),
      login: new OneExactIdentityDriver({ send, now: clock.now, sleep: tap.sleep, allowLoopback: true }),
      events: tappedEvents(tap, this.events),
      healTrigger: tappedHealTrigger(tap, this.triggers, () => this.#hang(tap)),
      log: this.#quietLog(tap.owner),
      now: clock.now,
      sleep: tap.sleep,
      random: () => 0.5,
      owner: tap.owner,
      vendOptions: { waitMs: vendWaitMs },
    });
    return { broker, tap, dynamo, linkKeys: tappedLinkKeys(world.linkKeys, tap), refreshQueue };
  }

  /** The engine's log, kept off the output but checked for tokens and secrets (invariant 8). */
  #quietLog(owner: string): EngineLog {
    const check = (message: string, ...extra: Array<Record<string, unknown>>) => {
      const line = `${message} ${JSON.stringify(extra, errorsAsText)}`;
      if (this.world.leakPattern.test(line)) this.log.leaks.push(`${owner}'s log line "${message}"`);
    };
    return { info: check, warn: check, error: check };
  }

  /** A hang: the clock past the holder's lease (any it holds), then a competing fresh invocation to completion. */
  async #hang(tap: Tap): Promise<void> {
    const held = [...(await this.log.items()).values()]
      .filter((item) => item.leaseOwner === tap.owner && item.leaseUntilMs !== undefined)
      .map((item) => item.leaseUntilMs ?? 0);
    const leaseEndMs =
      held.length > 0 ? Math.max(...held) : this.world.clock.now() + this.world.config.leaseMs;
    this.world.clock.advanceTo(leaseEndMs + CLOCK_SKEW_BOUND_MS + 1_000);
    await this.door.compete(this);
    // The stalled call returns after the competitor's work, not in the same millisecond: of two
    // chains Exact starts for one user, the broker takes the one whose request went out later.
    this.world.clock.advanceMs(1_000);
  }

  /**
   * Fresh invocations until every connection of the case settles: what the refresher,
   * fallback-login (after the trigger the door recorded), a vend, time passing (a BLOCKED user's
   * re-check), or an operator (a new code for a chain Exact started and the broker never stored;
   * the door's own operator step) would do next, in bounded rounds.
   */
  async #recover(): Promise<void> {
    for (let round = 0; round < RECOVERY_ROUNDS; round++) {
      await this.#passLeasesAndBackoffs();
      if (await this.#allSettled()) {
        // It looks settled: a consumer's vend must be served from it (or shows what is wrong).
        // A peer is judged by what it holds; its vends are its own door's business.
        const c = this.connection;
        await this.invoke("recovery", (invocation) => this.vend(invocation, c.mode === "code" ? 30 : 0, c));
        if (await this.#allSettled()) return;
        continue;
      }
      await this.invoke("recovery", (invocation) => invocation.broker.refresh.run());
      await this.#passLeasesAndBackoffs();
      let acted = false;
      for (const c of this.connections) {
        const item = await this.item(c);
        if (await this.#settled(c, item)) continue;
        if ((await this.door.operatorStep?.(this, c, item)) || (await this.#next(c, item))) acted = true;
      }
      // Only an operator could go on (REAUTH_REQUIRED): the checker reports the status.
      if (!acted && !(await this.#allSettled())) return;
    }
  }

  /** The next automatic step for one connection that has not settled; false when only an operator can act. */
  async #next(c: CampaignConnection, item: ChainRecord): Promise<boolean> {
    const { clock } = this.world;
    const id = c.connectionId;
    switch (item.status) {
      case ChainStatus.New:
        if (item.mode === "code") {
          await this.invoke("recovery", (invocation) => this.seed(invocation, c));
          return true;
        }
        await this.invoke("recovery", (invocation) => invocation.broker.heal.heal(id));
        return true;
      case ChainStatus.Verifying:
        if ((item.accessExpiresAtMs ?? 0) - clock.now() <= this.world.config.httpTimeoutMs + 2_000) {
          clock.advanceTo(item.windowOpensAtMs ?? clock.now());
        }
        await this.invoke("recovery", (invocation) => invocation.broker.heal.heal(id));
        return true;
      case ChainStatus.Broken:
      case ChainStatus.Healing:
        await this.invoke("recovery", (invocation) => invocation.broker.heal.heal(id));
        return true;
      case ChainStatus.Active:
      case ChainStatus.Suspect:
        if (item.mode === "implicit") {
          await this.invoke("recovery", (invocation) => invocation.broker.heal.heal(id));
          return true;
        }
        // Only a refresh tells whether the stored refresh token is still Exact's: in the window.
        clock.advanceTo(item.windowOpensAtMs ?? clock.now());
        await this.invoke("recovery", (invocation) => this.vend(invocation, 30, c));
        return true;
      case ChainStatus.Blocked:
        // Time passes: the scheduled refresh of the next round re-checks the user. Without a
        // chain (Exact ended it) the re-check is a login: fallback-login, as the refresher triggers.
        clock.advanceTo(item.dueAtMs ?? clock.now());
        if (item.refreshCt === undefined) {
          await this.invoke("recovery", (invocation) => invocation.broker.heal.heal(id));
        }
        return true;
      default:
        // REAUTH_REQUIRED: an operator's turn.
        return false;
    }
  }

  /** The hash of the refresh token the item really holds (its ciphertext, decrypted), if any. */
  async #storedRefreshHash(item: ChainRecord): Promise<string | undefined> {
    if (!item.refreshCt) return undefined;
    const key = `${item.incarnation ?? ""}/${item.refreshCt}`;
    if (this.#decrypted.has(key)) return this.#decrypted.get(key);
    const hash = await this.#decryptRefresh(item);
    this.#decrypted.set(key, hash);
    return hash;
  }

  async #decryptRefresh(item: ChainRecord): Promise<string | undefined> {
    try {
      const token = await this.world.cipher.decrypt(item.refreshCt ?? "", {
        connectionId: item.connectionId,
        kind: "refresh",
        ...(item.incarnation !== undefined ? { incarnation: item.incarnation } : {}),
      });
      return hashToken(token);
    } catch {
      return undefined;
    }
  }

  /**
   * ACTIVE, no live lease, and holding Exact's live chain of the user it is meant to hold
   * (implicit: a valid access token).
   */
  async #settled(c: CampaignConnection, item: ChainRecord): Promise<boolean> {
    const nowMs = this.world.clock.now();
    if (item.status !== ChainStatus.Active || this.world.store.leaseIsLive(item, nowMs)) return false;
    if (item.mode === "implicit") return accessValidityMs(item, nowMs) > 0;
    const expected = this.expectedUser(c);
    if (item.exactUserName !== expected) return false;
    return (await this.#storedRefreshHash(item)) === this.world.chainStats(c, expected)?.liveRefreshHash;
  }

  async #allSettled(): Promise<boolean> {
    for (const c of this.connections) if (!(await this.#settled(c, await this.item(c)))) return false;
    return true;
  }

  /** Moves the clock past a lease left behind, a backoff and a login block, of every connection. */
  async #passLeasesAndBackoffs(): Promise<void> {
    const { clock } = this.world;
    for (const c of this.connections) {
      const item = await this.item(c);
      if (item.leaseOwner !== undefined && item.leaseUntilMs !== undefined) {
        clock.advanceTo(item.leaseUntilMs + CLOCK_SKEW_BOUND_MS + 1_000);
      }
      if (item.backoffUntilMs !== undefined) clock.advanceTo(item.backoffUntilMs + 1);
      const blockedSeconds = loginBlockedFor(item, clock.now());
      if (blockedSeconds !== undefined) clock.advanceMs(blockedSeconds * 1000 + 1);
    }
  }

  /** Generations committed on `item` since the case first saw it that its history does not record. */
  async #unrecorded(item: ChainRecord): Promise<number[]> {
    const first = this.log.generations[item.connectionId]?.[0] ?? item.generation;
    const entries = await this.world.store.history.read(item, MAX_HISTORY_LIMIT);
    const recorded = new Set(
      entries.filter((e) => GENERATION_OUTCOMES.has(e.outcome)).map((e) => e.generation),
    );
    const missing: number[] = [];
    for (let generation = first + 1; generation <= item.generation; generation += 1)
      if (!recorded.has(generation)) missing.push(generation);
    return missing;
  }

  async #evidence(loginSuccesses: number, loginFailures: number): Promise<CaseEvidence> {
    const nowMs = this.world.clock.now();
    const finals: FinalState[] = [];
    for (const c of this.connections) {
      const item = await this.world.item(c.connectionId);
      const expectedUser = this.expectedUser(c);
      finals.push({
        connectionId: c.connectionId,
        status: item?.status,
        refreshHash: item ? await this.#storedRefreshHash(item) : undefined,
        liveRefreshHash: this.world.chainStats(c, expectedUser)?.liveRefreshHash ?? null,
        accessValidityMs: item ? accessValidityMs(item, nowMs) : 0,
        leaseLive: item ? this.world.store.leaseIsLive(item, nowMs) : false,
        heldUser: item?.exactUserName,
        expectedUser,
        unrecordedGenerations: item ? await this.#unrecorded(item) : [],
      });
    }
    for (const event of this.events) {
      if (this.world.leakPattern.test(JSON.stringify(event))) this.log.leaks.push(`the event ${event.type}`);
    }
    return {
      mode: this.connection.mode,
      tokenCalls: this.log.tokenCalls,
      logins: this.log.logins,
      callStarts: this.log.callStarts,
      returned: this.log.returns,
      vends: this.log.vends,
      leaks: this.log.leaks,
      unknownOutcomes: this.log.unknownOutcomes,
      probes: this.log.probes,
      lostAllowed: this.log.lostAllowed,
      generations: this.log.generations,
      statuses: this.log.statuses,
      loginSuccesses,
      loginFailures,
      finals,
      authorizedVends: this.log.authorizedVendFacts(),
      connectRequests: this.log.connectRequestFacts(),
      accessChecks: this.log.accessChecks,
      refreshes: this.log.refreshes,
      reportedVends: this.log.reportedVendFacts(),
      rejectedSecretCalls: this.log.rejectedSecretCalls,
      loginStarts: this.log.loginStarts,
      pins: this.log.pins,
      operatorPins: this.log.operatorPins,
      dailyCapRefusals: this.world.sim.stats().totals.tokenRequests.daily_cap ?? 0,
      renewals: this.log.renewals,
      queue: this.queue.facts(),
    };
  }
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** JSON.stringify replacer: an Error's name, message and cause chain, as a logger would print them. */
function errorsAsText(_key: string, value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  return { name: value.name, message: value.message, stack: value.stack, cause: value.cause };
}
