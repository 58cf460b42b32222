import {
  type BrokerError,
  ChainBusy,
  ConnectionNotFound,
  ExactUnavailable,
  Throttled,
  ValidationError,
} from "../errors.js";
import { checkDue, servesCurrent } from "./access-check.js";
import { accessValidityMs, type ChainRecord, ChainStatus, ConnectionMode, servable } from "./chain-record.js";
import type { EngineDeps, HealTrigger } from "./engine-deps.js";
import { HealDoor } from "./heal-door.js";
import { InProcessHealTrigger } from "./heal-trigger.js";
import { type HistoryContext, HistoryDoor } from "./history-entry.js";
import { withIncarnation } from "./incarnation.js";
import { LeaseWaitSchedule } from "./lease-wait.js";
import { loginBlockedFor } from "./login-budget.js";
import { TokenCache, type VendAnswer } from "./token-cache.js";
import { refuseWithoutChain, VendAnswers } from "./vend-answers.js";
import { type StepContext, VendSteps } from "./vend-steps.js";

export interface VendDoorOptions {
  readonly cache?: TokenCache;
  /** Let concurrent vends of one connection in this process share one slow path (default true). */
  readonly coalesce?: boolean;
  /** How long a vend waits for another holder's generation before ChainBusy (default lease + 5 s). */
  readonly waitMs?: number;
  /** Starts the heal of a chain found BROKEN (the vend then waits for the new generation). */
  readonly healTrigger?: HealTrigger;
}

export interface VendOptions {
  /** Epoch ms (injected clock) by which the answer must be out: the Lambda's deadline. */
  readonly deadlineMs?: number;
  /**
   * Who asks, for the connection's history (entries of the work this vend does): token-vend
   * passes the AWS principal ARN that STS verified. Only recorded when the vend advances the chain.
   */
  readonly caller?: string;
  /**
   * The generation whose access token Exact refused the consumer (a 401), an integer ≥ 1: this
   * vend bypasses every cache, the warm container's included, and never answers that token
   * unless `/current/Me` accepted it since (rejected-token-check.ts: one check per generation,
   * whoever reports it). A newer generation is served at once; the same one is checked, then
   * served again or refreshed inside Exact's window.
   */
  readonly rejectedGeneration?: number;
}

/**
 * The vend door: an access token with at least the validity asked for, refreshing the chain if
 * it must (design invariant 12). `minValiditySeconds` 0 means any valid token; when no token with
 * enough validity can be had yet, the answer is a retryable error (ChainBusy, ExactUnavailable,
 * Throttled) with `retryAfterSeconds`, never a token that expires sooner than asked.
 *
 * Waiters wait for the generation, not the lease: while someone else holds the lease they
 * re-read (strongly consistent; around when the holder's token call should land, lease-wait.ts)
 * until a newer generation lands, the lease frees, or the deadline passes. A chain stored as VERIFYING is never served, nor is a token
 * `/current/Me` refused after a consumer reported it (access-check.ts). The work under a lease
 * is in vend-steps.ts.
 */
export class VendDoor {
  readonly #deps: EngineDeps;
  readonly #cache: TokenCache;
  readonly #answers: VendAnswers;
  readonly #steps: VendSteps;
  readonly #coalesce: boolean;
  readonly #waitMs: number;
  readonly #inflight = new Map<string, Promise<unknown>>();
  readonly #healTrigger: HealTrigger;
  readonly #waits: LeaseWaitSchedule;
  #leaseWaits = 0;

  constructor(deps: EngineDeps, options: VendDoorOptions = {}) {
    this.#deps = deps;
    this.#cache = options.cache ?? new TokenCache();
    this.#answers = new VendAnswers(deps, this.#cache);
    this.#steps = new VendSteps(deps, this.#answers);
    this.#coalesce = options.coalesce ?? true;
    this.#waitMs = options.waitMs ?? deps.config.leaseMs + 5_000;
    this.#healTrigger = options.healTrigger ?? new InProcessHealTrigger(() => new HealDoor(deps), deps.log);
    this.#waits = new LeaseWaitSchedule(deps.random);
  }

  /**
   * Vends so far that had to wait for another invocation's work (a refresh, a login). token-vend
   * reports the increase per invocation as the LeaseWaits metric.
   */
  get leaseWaits(): number {
    return this.#leaseWaits;
  }

  /**
   * @param minValiditySeconds seconds of validity the token must still have when answered (0: any valid token)
   * @throws ConnectionNotFound, ReauthRequired, ValidationError (`rejectedGeneration` above the
   *   connection's current generation), or a retryable ChainBusy / ExactUnavailable / Throttled
   */
  async vend(
    connectionId: string,
    minValiditySeconds: number,
    options: VendOptions = {},
  ): Promise<VendAnswer> {
    const needMs = Math.max(1, minValiditySeconds * 1000);
    const rejected = options.rejectedGeneration;
    // A vend that reports a refused token skips this container's memory, which forgets that
    // generation, and shares no other vend's work: either may end in the refused token.
    if (rejected !== undefined) this.#cache.forget(connectionId, rejected);
    while (rejected === undefined) {
      const cached = this.#cache.get(connectionId, needMs, this.#deps.now());
      if (cached) return cached;
      const running = this.#coalesce ? this.#inflight.get(connectionId) : undefined;
      if (!running) break;
      await running.catch(() => undefined);
    }
    const history: HistoryContext = {
      door: HistoryDoor.Vend,
      keepDays: this.#deps.config.historyDays,
      ...(options.caller !== undefined ? { caller: options.caller } : {}),
    };
    const slow = this.#slowPath(connectionId, needMs, options.deadlineMs, history, rejected);
    if (!this.#coalesce || rejected !== undefined) return slow;
    this.#inflight.set(connectionId, slow);
    try {
      return await slow;
    } finally {
      if (this.#inflight.get(connectionId) === slow) this.#inflight.delete(connectionId);
    }
  }

  async #slowPath(
    connectionId: string,
    needMs: number,
    deadlineMs: number | undefined,
    history: HistoryContext,
    rejected: number | undefined,
  ): Promise<VendAnswer> {
    const { store, now, sleep } = this.#deps;
    const giveUpAtMs = Math.min(now() + this.#waitMs, deadlineMs ?? Number.POSITIVE_INFINITY);
    const ctx: StepContext = {
      needMs,
      giveUpAtMs,
      ...(deadlineMs !== undefined ? { deadlineMs } : {}),
      history,
    };
    const waiter = this.#waits.waiter();
    let healTriggered = false;
    let waited = false;
    /** Waits for someone else's work (a refresh, a heal), or gives up with ChainBusy at the deadline. */
    const waitOrGiveUp = async (record: ChainRecord, what: string): Promise<void> => {
      if (!waited) {
        waited = true;
        this.#leaseWaits += 1;
      }
      const nowMs = now();
      const pauseMs = waiter.pauseMs(record, nowMs);
      if (nowMs + pauseMs >= giveUpAtMs) {
        const untilMs = (record.leaseUntilMs ?? 0) > nowMs ? (record.leaseUntilMs ?? 0) : nowMs + 5_000;
        throw new ChainBusy(`connection "${connectionId}" is being ${what} by another invocation`, {
          retryAfterSeconds: Math.max(1, Math.ceil((untilMs - nowMs) / 1000)),
        });
      }
      await sleep(pauseMs);
    };

    for (;;) {
      const read = await store.get(connectionId);
      if (!read) {
        throw new ConnectionNotFound(
          `connection "${connectionId}" does not exist; add it with: exact-broker connection add --id ${connectionId} …`,
        );
      }
      if (rejected !== undefined && rejected > read.generation) {
        throw new ValidationError(
          `connection "${connectionId}": rejectedGeneration ${rejected} is above its current generation ${read.generation}`,
        );
      }
      refuseWithoutChain(read, now());
      waiter.observe(read);
      const nowMs = now();
      // A token with the validity asked for is served whatever else is going on (never a
      // VERIFYING one, nor one reported refused and not accepted by /current/Me since).
      if (servable(read) && servesCurrent(read, rejected) && accessValidityMs(read, nowMs) >= needMs) {
        const answer = await this.#answers.current(read, needMs);
        if (answer) return answer;
      }
      const record = store.leaseIsLive(read, nowMs) ? read : await withIncarnation(this.#deps, read);
      if (!record) continue;
      if (store.leaseIsLive(record, nowMs) || record.incarnation === undefined) {
        await waitOrGiveUp(record, record.status === ChainStatus.Healing ? "healed" : "refreshed");
        continue;
      }
      // Implicit chains get every token from a login; like a heal, it runs in fallback-login.
      const needsLogin = record.mode === ConnectionMode.Implicit && record.status !== ChainStatus.Verifying;
      if (needsLogin || record.status === ChainStatus.Broken || record.status === ChainStatus.Healing) {
        const blockedFor = loginBlockedFor(record, nowMs);
        if (blockedFor !== undefined) {
          return this.#degraded(
            record,
            needMs,
            rejected,
            new ChainBusy(`connection "${connectionId}": the next login is in ${blockedFor} s`, {
              retryAfterSeconds: blockedFor,
            }),
          );
        }
        if (!healTriggered) {
          this.#healTrigger.trigger(connectionId);
          healTriggered = true;
        }
        await waitOrGiveUp(record, needsLogin ? "logged in" : "healed");
        continue;
      }
      if ((record.backoffUntilMs ?? 0) > nowMs)
        return this.#degraded(record, needMs, rejected, this.#backoffError(record, nowMs));
      const step =
        record.status === ChainStatus.Verifying
          ? await this.#steps.verify(record, ctx)
          : checkDue(record, rejected, needMs, nowMs)
            ? await this.#steps.check(record, ctx)
            : await this.#steps.refreshInWindow(record, ctx);
      switch (step.kind) {
        case "answer":
          return step.answer;
        case "failed":
          return this.#degraded(record, needMs, rejected, step.error);
        case "again":
          if (step.pause) await waitOrGiveUp(record, "refreshed");
      }
    }
  }

  /**
   * A chain that cannot be refreshed right now still serves its current token if it has the
   * validity asked for (and is not one reported refused that `/current/Me` has not accepted).
   */
  async #degraded(
    record: ChainRecord,
    needMs: number,
    rejected: number | undefined,
    error: BrokerError,
  ): Promise<VendAnswer> {
    const serves = servable(record) && servesCurrent(record, rejected);
    if (serves && accessValidityMs(record, this.#deps.now()) >= needMs) {
      const answer = await this.#answers.current(record, needMs);
      if (answer) return answer;
    }
    throw error;
  }

  #backoffError(record: ChainRecord, nowMs: number): BrokerError {
    const retryAfterSeconds = Math.max(1, Math.ceil(((record.backoffUntilMs ?? nowMs) - nowMs) / 1000));
    const message = `connection "${record.connectionId}" is backing off after Exact refused or failed a ${record.status === ChainStatus.Verifying ? "check" : "refresh"}`;
    return record.backoffReason === "throttled"
      ? new Throttled(message, { retryAfterSeconds })
      : new ExactUnavailable(message, { retryAfterSeconds });
  }
}
