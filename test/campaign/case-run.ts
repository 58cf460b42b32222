import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type Broker, createBroker } from "../../lib/broker.js";
import { accessValidityMs, type ChainRecord, ChainStatus } from "../../lib/chain/chain-record.js";
import type { EngineLog } from "../../lib/chain/engine-deps.js";
import { loginBlockedFor } from "../../lib/chain/login-budget.js";
import { CLOCK_SKEW_BOUND_MS } from "../../lib/chain/timing.js";
import type { VendAnswer } from "../../lib/chain/token-cache.js";
import { hashToken } from "../../lib/chain/token-seal.js";
import type { BrokerEvent } from "../../lib/events/broker-events.js";
import { OneExactIdentityDriver } from "../../lib/exact/login/one-exact-identity-driver.js";
import { ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import type { LinkKeySource } from "../../lib/onboarding/link-key-source.js";
import { CaseLog } from "./case-log.js";
import { tappedSend } from "./exact-tap.js";
import {
  type FaultPlan,
  Tap,
  type TapHooks,
  tappedCipher,
  tappedDynamo,
  tappedEvents,
  tappedHealTrigger,
  tappedLinkKeys,
  tappedSecrets,
} from "./fault-plan.js";
import { type CaseEvidence, checkInvariants, type Expectations } from "./invariants.js";
import type { CampaignConnection, World } from "./world.js";

/** One Lambda invocation: a broker built afresh, every external call of it through one tap. */
export interface Invocation {
  readonly broker: Broker;
  readonly tap: Tap;
  /** The tapped DynamoDB client, for what a handler builds beside the broker (the connect flow's nonces). */
  readonly dynamo: DynamoDBClient;
  readonly linkKeys: LinkKeySource;
}

export type Role = "setup" | "door" | "competitor" | "recovery";

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
export class CaseRun {
  readonly world: World;
  readonly door: Door;
  readonly label: string;
  readonly log: CaseLog;
  readonly connection: CampaignConnection;
  /** Door-specific values the setup leaves for the act (a code, a connect state). */
  readonly scratch: { code?: string; state?: string } = {};
  readonly events: BrokerEvent[] = [];
  readonly triggers: string[] = [];
  /** One line per invocation: how it ended and where it left the chain (for a failure's message). */
  readonly trace: string[] = [];
  #invocations = 0;
  /** Invocations started and not yet over (a crashed one is over once abandoned). */
  #running = 0;
  #lastRead: ChainRecord | undefined;
  readonly #hooks: TapHooks;

  private constructor(world: World, door: Door, label: string, connection: CampaignConnection) {
    this.world = world;
    this.door = door;
    this.label = label;
    this.connection = connection;
    this.log = new CaseLog(world, connection);
    this.#hooks = {
      faultHit: (tap, hit) => this.log.faultHit(tap, hit),
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
      const before = world.loginStats(connection);
      run.log.watchStatus();
      const { tap } = await run.invoke("door", (invocation) => door.act(run, invocation), plan);
      await run.#recover();
      const after = world.loginStats(connection);
      const loginSuccesses = (after?.success ?? 0) - (before?.success ?? 0);
      const failed = (counts: typeof after) =>
        (counts?.bad_password ?? 0) +
        (counts?.bad_totp ?? 0) +
        (counts?.totp_reused ?? 0) +
        (counts?.locked ?? 0) +
        (counts?.unknown_user ?? 0);
      const evidence = await run.#evidence(loginSuccesses, failed(after) - failed(before));
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
      await world.removeConnection(connection);
    }
  }

  /** Runs `work` as one invocation; a crashed one is abandoned, never awaited. */
  async invoke<T>(
    role: Role,
    work: (invocation: Invocation) => Promise<T>,
    plan?: FaultPlan,
  ): Promise<InvocationEnd<T>> {
    this.#invocations += 1;
    this.#running += 1;
    const tap = new Tap({
      owner: `${this.label}/${role}-${this.#invocations}`,
      ...(plan ? { plan } : {}),
      hooks: this.#hooks,
      sleep: this.world.clock.sleep,
    });
    const invocation = this.#invocation(tap, role === "door" || role === "competitor" ? VEND_WAIT_MS : 0);
    const finished = work(invocation).then(
      (value): Ending<T> => ({ kind: "returned", value }),
      (error: unknown): Ending<T> => ({ kind: "threw", error }),
    );
    let end = await Promise.race([finished, tap.crashedSignal.then((): Ending<T> => ({ kind: "crashed" }))]);
    // A hang or crash at a synchronous call (the heal trigger) acts at the holder's next call;
    // one that returned before making another still runs it now.
    if (end.kind !== "crashed") await tap.drain();
    if (tap.crashed) end = { kind: "crashed" };
    const item = end.kind === "crashed" ? await this.log.crashed() : await this.log.returned(tap);
    this.#running -= 1;
    this.#lastRead = item;
    const hit = tap.hit ? ` [${tap.hit.plan.fault} at call ${tap.hit.plan.atCall} ${tap.hit.plan.name}]` : "";
    const how = end.kind === "threw" ? `threw ${describeError(end.error)}` : end.kind;
    this.trace.push(
      `${tap.owner}${hit}: ${how} -> ${item?.status ?? "gone"} generation ${item?.generation ?? "-"}`,
    );
    return { ...end, tap };
  }

  /** A vend whose answer is checked for the validity it asked for. */
  async vend(invocation: Invocation, minValiditySeconds: number): Promise<VendAnswer> {
    const answer = await invocation.broker.vend.vend(this.connection.connectionId, minValiditySeconds);
    this.log.vendAnswered(invocation.tap.owner, minValiditySeconds, answer);
    return answer;
  }

  /** After a write outside the engine (a setup's corruption): the next `item()` reads again. */
  forgetItem(): void {
    this.#lastRead = undefined;
  }

  /**
   * The case's item, read with the unfaulted client; the read an invocation's end made is reused
   * while no invocation runs (nothing else writes the item).
   */
  async item(): Promise<ChainRecord> {
    const item =
      this.#running === 0 && this.#lastRead
        ? this.#lastRead
        : await this.world.item(this.connection.connectionId);
    if (!item) throw new Error(`connection ${this.connection.connectionId} is gone`);
    return item;
  }

  #invocation(tap: Tap, vendWaitMs: number): Invocation {
    const { world } = this;
    const clock = world.clock;
    const send = tappedSend(tap, clock, this.log);
    const dynamo = tappedDynamo(world.stack.dynamo.client, tap);
    const broker = createBroker(world.stack.env, {
      dynamo,
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
    return { broker, tap, dynamo, linkKeys: tappedLinkKeys(world.linkKeys, tap) };
  }

  /** The engine's log, kept off the output but checked for tokens and secrets (invariant 8). */
  #quietLog(owner: string): EngineLog {
    const check = (message: string, ...extra: Array<Record<string, unknown>>) => {
      const line = `${message} ${JSON.stringify(extra, errorsAsText)}`;
      if (this.world.leakPattern.test(line)) this.log.leaks.push(`${owner}'s log line "${message}"`);
    };
    return { info: check, warn: check, error: check };
  }

  /** A hang: the clock past the holder's lease, then a competing fresh invocation to completion. */
  async #hang(tap: Tap): Promise<void> {
    const item = await this.item();
    const leaseEndMs =
      item.leaseOwner === tap.owner && item.leaseUntilMs !== undefined
        ? item.leaseUntilMs
        : this.world.clock.now() + this.world.config.leaseMs;
    this.world.clock.advanceTo(leaseEndMs + CLOCK_SKEW_BOUND_MS + 1_000);
    await this.door.compete(this);
  }

  /**
   * Fresh invocations until the chain settles: what the refresher, fallback-login (after the
   * trigger the door recorded), a vend, or an operator (a new code, for a chain Exact started
   * and the broker never stored) would do next, in bounded rounds.
   */
  async #recover(): Promise<void> {
    const { clock } = this.world;
    const id = this.connection.connectionId;
    for (let round = 0; round < RECOVERY_ROUNDS; round++) {
      if (await this.#settled(await this.#passLeasesAndBackoffs())) {
        // It looks settled: a consumer's vend must be served from it (or shows what is wrong).
        await this.invoke("recovery", (invocation) =>
          this.vend(invocation, this.connection.mode === "code" ? 30 : 0),
        );
        if (await this.#settled(await this.item())) return;
        continue;
      }
      await this.invoke("recovery", (invocation) => invocation.broker.refresh.run());
      const item = await this.#passLeasesAndBackoffs();
      if (await this.#settled(item)) continue;
      switch (item.status) {
        case ChainStatus.New:
          if (item.mode === "code") {
            const code = this.world.authorize(this.connection);
            await this.invoke("recovery", (invocation) => invocation.broker.onboarding.seed(id, code));
            break;
          }
          await this.invoke("recovery", (invocation) => invocation.broker.heal.heal(id));
          break;
        case ChainStatus.Verifying:
          if ((item.accessExpiresAtMs ?? 0) - clock.now() <= this.world.config.httpTimeoutMs + 2_000) {
            clock.advanceTo(item.windowOpensAtMs ?? clock.now());
          }
          await this.invoke("recovery", (invocation) => invocation.broker.heal.heal(id));
          break;
        case ChainStatus.Broken:
        case ChainStatus.Healing:
          await this.invoke("recovery", (invocation) => invocation.broker.heal.heal(id));
          break;
        case ChainStatus.Active:
        case ChainStatus.Suspect:
          if (item.mode === "implicit") {
            await this.invoke("recovery", (invocation) => invocation.broker.heal.heal(id));
            break;
          }
          // Only a refresh tells whether the stored refresh token is still Exact's: in the window.
          clock.advanceTo(item.windowOpensAtMs ?? clock.now());
          await this.invoke("recovery", (invocation) => this.vend(invocation, 30));
          break;
        default:
          // REAUTH_REQUIRED: an operator's turn; the checker reports the status.
          return;
      }
    }
  }

  /** The hash of the refresh token the item really holds (its ciphertext, decrypted), if any. */
  async #storedRefreshHash(item: ChainRecord): Promise<string | undefined> {
    if (!item.refreshCt) return undefined;
    try {
      const token = await this.world.cipher.decrypt(item.refreshCt, {
        connectionId: item.connectionId,
        kind: "refresh",
        ...(item.incarnation !== undefined ? { incarnation: item.incarnation } : {}),
      });
      return hashToken(token);
    } catch {
      return undefined;
    }
  }

  /** ACTIVE, no live lease, and holding Exact's live chain (implicit: a valid access token). */
  async #settled(item: ChainRecord): Promise<boolean> {
    const nowMs = this.world.clock.now();
    if (item.status !== ChainStatus.Active || this.world.store.leaseIsLive(item, nowMs)) return false;
    if (item.mode === "implicit") return accessValidityMs(item, nowMs) > 0;
    return (await this.#storedRefreshHash(item)) === this.world.chainStats(this.connection)?.liveRefreshHash;
  }

  /** Moves the clock past a lease left behind, a backoff and a login block; returns the item. */
  async #passLeasesAndBackoffs(): Promise<ChainRecord> {
    const { clock } = this.world;
    const item = await this.item();
    if (item.leaseOwner !== undefined && item.leaseUntilMs !== undefined) {
      clock.advanceTo(item.leaseUntilMs + CLOCK_SKEW_BOUND_MS + 1_000);
    }
    if (item.backoffUntilMs !== undefined) clock.advanceTo(item.backoffUntilMs + 1);
    const blockedSeconds = loginBlockedFor(item, clock.now());
    if (blockedSeconds !== undefined) clock.advanceMs(blockedSeconds * 1000 + 1);
    return item;
  }

  async #evidence(loginSuccesses: number, loginFailures: number): Promise<CaseEvidence> {
    const item = await this.item();
    const nowMs = this.world.clock.now();
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
      final: {
        status: item?.status,
        refreshHash: item ? await this.#storedRefreshHash(item) : undefined,
        liveRefreshHash: this.world.chainStats(this.connection)?.liveRefreshHash ?? null,
        accessValidityMs: item ? accessValidityMs(item, nowMs) : 0,
        leaseLive: item ? this.world.store.leaseIsLive(item, nowMs) : false,
      },
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
