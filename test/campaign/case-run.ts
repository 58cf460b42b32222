import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type Broker, createBroker } from "../../lib/broker.js";
import { accessValidityMs, type ChainRecord, ChainStatus } from "../../lib/chain/chain-record.js";
import type { EngineLog } from "../../lib/chain/engine-deps.js";
import { loginBlockedFor } from "../../lib/chain/login-budget.js";
import { CLOCK_SKEW_BOUND_MS } from "../../lib/chain/timing.js";
import type { VendAnswer } from "../../lib/chain/token-cache.js";
import type { BrokerEvent } from "../../lib/events/broker-events.js";
import { OneExactIdentityDriver } from "../../lib/exact/login/one-exact-identity-driver.js";
import { ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import type { LinkKeySource } from "../../lib/onboarding/link-key-source.js";
import { LEAK_PATTERN } from "../support/leak-guard.js";
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

export type InvocationEnd<T> =
  | { readonly kind: "returned"; readonly value: T }
  | { readonly kind: "threw"; readonly error: unknown }
  | { readonly kind: "crashed" };

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
/** Vends give up waiting for another holder after this: in this harness nobody else runs meanwhile. */
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
    const T: number[] = [performance.now()];
    world.sim.reset();
    world.clock.alignToTotpStep();
    const connection = await world.addConnection(door.mode);
    const run = new CaseRun(world, door, label, connection);
    try {
      await door.setup(run);
      T.push(performance.now());
      const before = world.loginStats(connection);
      run.log.watchStatus();
      let door_: Tap | undefined;
      await run.invoke(
        "door",
        async (invocation) => {
          door_ = invocation.tap;
          return door.act(run, invocation);
        },
        plan,
      );
      T.push(performance.now());
      await run.#recover();
      T.push(performance.now());
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
      const tap = door_ as Tap | undefined;
      T.push(performance.now());
      const g = globalThis as unknown as { prof?: number[] };
      g.prof ??= [0, 0, 0, 0, 0];
      for (let i = 1; i < T.length; i++) g.prof[i - 1]! += (T[i] as number) - (T[i - 1] as number);
      g.prof[4]! += 1;
      if (plan && !tap?.hit) violations.push(`the run never reached call ${plan.atCall} (${plan.name})`);
      return {
        sequence: tap?.sequence ?? [],
        violations,
        loginSuccesses,
        hit: tap?.hit !== undefined,
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
    const tap = new Tap({
      owner: `${this.label}/${role}-${this.#invocations}`,
      ...(plan ? { plan } : {}),
      hooks: this.#hooks,
      sleep: this.world.clock.sleep,
    });
    const invocation = this.#invocation(tap);
    const finished = work(invocation).then(
      (value): InvocationEnd<T> => ({ kind: "returned", value }),
      (error: unknown): InvocationEnd<T> => ({ kind: "threw", error }),
    );
    let end = await Promise.race([
      finished,
      tap.crashedSignal.then((): InvocationEnd<T> => ({ kind: "crashed" })),
    ]);
    // A hang or crash at a synchronous call (the heal trigger) acts at the holder's next call;
    // one that returned before making another still runs it now.
    if (end.kind !== "crashed") await tap.drain();
    if (tap.crashed) end = { kind: "crashed" };
    const item = end.kind === "crashed" ? await this.log.crashed() : await this.log.returned(tap);
    const hit = tap.hit ? ` [${tap.hit.plan.fault} at call ${tap.hit.plan.atCall} ${tap.hit.plan.name}]` : "";
    const how = end.kind === "threw" ? `threw ${describeError(end.error)}` : end.kind;
    this.trace.push(
      `${tap.owner}${hit}: ${how} -> ${item?.status ?? "gone"} generation ${item?.generation ?? "-"}`,
    );
    return end;
  }

  /** A vend whose answer is checked for the validity it asked for. */
  async vend(invocation: Invocation, minValiditySeconds: number): Promise<VendAnswer> {
    const answer = await invocation.broker.vend.vend(this.connection.connectionId, minValiditySeconds);
    this.log.vendAnswered(invocation.tap.owner, minValiditySeconds, answer);
    return answer;
  }

  async item(): Promise<ChainRecord> {
    const item = await this.world.item(this.connection.connectionId);
    if (!item) throw new Error(`connection ${this.connection.connectionId} is gone`);
    return item;
  }

  #invocation(tap: Tap): Invocation {
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
      vendOptions: { waitMs: VEND_WAIT_MS },
    });
    return { broker, tap, dynamo, linkKeys: tappedLinkKeys(world.linkKeys, tap) };
  }

  /** The engine's log, kept off the output but checked for tokens and secrets (invariant 8). */
  #quietLog(owner: string): EngineLog {
    const check = (message: string, ...extra: Array<Record<string, unknown>>) => {
      const line = `${message} ${JSON.stringify(extra, errorsAsText)}`;
      if (LEAK_PATTERN.test(line)) this.log.leaks.push(`${owner}'s log line "${message}"`);
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
      if (this.#settled(await this.#passLeasesAndBackoffs())) break;
      await this.invoke("recovery", (invocation) => invocation.broker.refresh.run());
      const item = await this.#passLeasesAndBackoffs();
      if (this.#settled(item)) break;
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
    // The chain serves: a consumer's vend after the recovery.
    await this.#passLeasesAndBackoffs();
    await this.invoke("recovery", (invocation) =>
      this.vend(invocation, this.connection.mode === "code" ? 30 : 0),
    );
  }

  /** ACTIVE, no live lease, and holding Exact's live chain (implicit: a valid access token). */
  #settled(item: ChainRecord): boolean {
    const nowMs = this.world.clock.now();
    if (item.status !== ChainStatus.Active || this.world.store.leaseIsLive(item, nowMs)) return false;
    if (item.mode === "implicit") return accessValidityMs(item, nowMs) > 0;
    return item.refreshHash === this.world.chainStats(this.connection)?.liveRefreshHash;
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
    const item = await this.world.item(this.connection.connectionId);
    const nowMs = this.world.clock.now();
    for (const event of this.events) {
      if (LEAK_PATTERN.test(JSON.stringify(event))) this.log.leaks.push(`the event ${event.type}`);
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
        refreshHash: item?.refreshHash,
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
