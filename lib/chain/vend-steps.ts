import { type BrokerError, Throttled } from "../errors.js";
import { awaitsProbe, type ChainRecord, ChainStatus, LeasePurpose } from "./chain-record.js";
import { LeaseRefused } from "./chain-store.js";
import type { EngineDeps } from "./engine-deps.js";
import type { HistoryContext } from "./history-entry.js";
import { RejectedTokenCheck } from "./rejected-token-check.js";
import type { VendAnswer } from "./token-cache.js";
import { type FreshAccess, type ProtocolResult, TokenProtocol } from "./token-protocol.js";
import type { VendAnswers } from "./vend-answers.js";
import { PendingVerification } from "./verification.js";

/** One attempt of the vend's slow path: an answer, a failure to report, or go round again. */
export type Step =
  | { readonly kind: "answer"; readonly answer: VendAnswer }
  | { readonly kind: "failed"; readonly error: BrokerError }
  | { readonly kind: "again"; readonly pause: boolean };

/** What one vend asks and by when: the same for every step it takes. */
export interface StepContext {
  /** Validity the answer must still have (ms, at least 1). */
  readonly needMs: number;
  /** Epoch ms after which the vend stops waiting (its wait, or its deadline, whichever is first). */
  readonly giveUpAtMs: number;
  /** Epoch ms: the Lambda's deadline, which bounds every lease. */
  readonly deadlineMs?: number;
  readonly history: HistoryContext;
}

/**
 * The chain work a vend does under a lease, one step of its slow path at a time (vend-door.ts
 * loops, reads and waits): a refresh inside Exact's window, the pending identity check of a
 * VERIFYING chain, or the check of a token a consumer reported refused. Each step ends its lease
 * before it returns.
 */
export class VendSteps {
  readonly #deps: EngineDeps;
  readonly #answers: VendAnswers;
  readonly #protocol: TokenProtocol;
  readonly #verification: PendingVerification;
  readonly #rejected: RejectedTokenCheck;

  constructor(deps: EngineDeps, answers: VendAnswers) {
    this.#deps = deps;
    this.#answers = answers;
    this.#protocol = new TokenProtocol(deps);
    this.#verification = new PendingVerification(deps);
    this.#rejected = new RejectedTokenCheck(deps);
  }

  /** Code mode: wait for Exact's window if it opens in a moment, then refresh under the lease. */
  async refreshInWindow(record: ChainRecord, ctx: StepContext): Promise<Step> {
    const { store, now, sleep, config, owner } = this.#deps;
    const windowMs = (record.windowOpensAtMs ?? 0) - now();
    if (windowMs > 0) {
      // Exact would refuse a refresh now. The window opens at most REFRESH_MARGIN_MS after the
      // token falls below the largest validity a caller may ask for, so this is short (unless
      // the token was refused early: then the vend is told when to come back).
      if (now() + windowMs > ctx.giveUpAtMs) return notYet(record, windowMs);
      await sleep(windowMs);
      return { kind: "again", pause: false };
    }
    const result = await store.withLease(
      {
        record,
        owner,
        purpose: awaitsProbe(record) ? LeasePurpose.Probe : LeasePurpose.Refresh,
        leaseMs: config.leaseMs,
        ...(ctx.deadlineMs !== undefined ? { deadlineMs: ctx.deadlineMs } : {}),
        history: ctx.history,
      },
      (session) => this.#protocol.refresh(session, { vended: true }),
    );
    return result === LeaseRefused ? { kind: "again", pause: true } : this.#afterRefresh(result, record, ctx);
  }

  /** A chain stored as VERIFYING: its identity check, here and now (no login). */
  async verify(record: ChainRecord, ctx: StepContext): Promise<Step> {
    const outcome = await this.#verification.finish(record, {
      vended: true,
      ...(ctx.deadlineMs !== undefined ? { deadlineMs: ctx.deadlineMs } : {}),
      history: ctx.history,
    });
    switch (outcome.kind) {
      case "verified":
        return this.#step(outcome.fresh, record, ctx.needMs);
      case "failed":
        return { kind: "failed", error: outcome.error };
      case "refreshed":
        return outcome.result.kind === "failed"
          ? { kind: "failed", error: outcome.result.error }
          : { kind: "again", pause: false };
      case "not_yet":
        if (this.#deps.now() + outcome.waitMs > ctx.giveUpAtMs) return notYet(record, outcome.waitMs);
        await this.#deps.sleep(outcome.waitMs);
        return { kind: "again", pause: false };
      case "busy":
        return { kind: "again", pause: true };
      default:
        return { kind: "again", pause: false };
    }
  }

  /** The current token, reported refused by a consumer: its `/current/Me` check (rejected-token-check.ts). */
  async check(record: ChainRecord, ctx: StepContext): Promise<Step> {
    const outcome = await this.#rejected.run(record, {
      ...(ctx.deadlineMs !== undefined ? { deadlineMs: ctx.deadlineMs } : {}),
      history: ctx.history,
    });
    switch (outcome.kind) {
      case "accepted":
        return this.#step(outcome.fresh, record, ctx.needMs);
      case "refreshed":
        return this.#afterRefresh(outcome.result, record, ctx);
      case "failed":
        return { kind: "failed", error: outcome.error };
      case "busy":
        return { kind: "again", pause: true };
      default:
        return { kind: "again", pause: false };
    }
  }

  #afterRefresh(result: ProtocolResult, record: ChainRecord, ctx: StepContext): Step {
    switch (result.kind) {
      case "failed":
        return { kind: "failed", error: result.error };
      case "refreshed":
        return this.#step(
          record.status === ChainStatus.Verifying ? undefined : result.fresh,
          record,
          ctx.needMs,
        );
      default:
        // Superseded, or broken now: the next read shows which (and a broken chain gets healed).
        return { kind: "again", pause: false };
    }
  }

  /** Answers with `fresh` if it has the validity asked for; otherwise the next round decides (refresh, or wait). */
  #step(fresh: FreshAccess | undefined, record: ChainRecord, needMs: number): Step {
    const answer = fresh && this.#answers.fresh(record, fresh, needMs);
    return answer ? { kind: "answer", answer } : { kind: "again", pause: false };
  }
}

function notYet(record: ChainRecord, waitMs: number): Step {
  return {
    kind: "failed",
    error: new Throttled(`connection "${record.connectionId}" cannot be refreshed yet`, {
      retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
    }),
  };
}
