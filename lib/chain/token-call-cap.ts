import { Throttled } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import type { ChainRecord } from "./chain-record.js";
import { announce, type EngineDeps } from "./engine-deps.js";

/**
 * Exact announced, for July 2021, at most 200 token-endpoint calls per app, user and day
 * (shared/exact-online.md; enforcement unconfirmed). One connection holds each (app, user)
 * (its guard), so the chain's own count is the pair's. A hot chain needs about 152 a day (one
 * refresh every 570 s): the cap is kept by construction, and a chain that reaches
 * TOKEN_CALLS_WARN_AT raises an event, since something calls far more than a chain should.
 */
export const TOKEN_CALLS_PER_DAY = 200;
export const TOKEN_CALLS_WARN_AT = 180;

const DAY_MS = 86_400_000;

/** Token calls today (UTC) of a chain, counted by the lease session's writes (LeaseSession.callStarted). */
export interface TokenCalls {
  /** floor(epoch ms / 1 day). */
  readonly day: number;
  readonly count: number;
}

export function utcDay(nowMs: number): number {
  return Math.floor(nowMs / DAY_MS);
}

/** The chain's token calls today, before this holder's. */
export function callsToday(record: Pick<ChainRecord, "tokenCalls">, nowMs: number): number {
  return record.tokenCalls?.day === utcDay(nowMs) ? record.tokenCalls.count : 0;
}

/** A lease holder's token calls, added to the chain's count for today by each of its writes. */
export class CallLedger {
  readonly #record: Pick<ChainRecord, "tokenCalls">;
  readonly #now: () => number;
  #calls = 0;
  #warningDue = false;

  constructor(record: Pick<ChainRecord, "tokenCalls">, now: () => number) {
    this.#record = record;
    this.#now = now;
  }

  count(): void {
    const before = this.today;
    this.#calls += 1;
    if (before < TOKEN_CALLS_WARN_AT && this.today >= TOKEN_CALLS_WARN_AT) this.#warningDue = true;
  }

  /** True once after a call of this holder's took the chain's day to TOKEN_CALLS_WARN_AT. */
  takeWarning(): boolean {
    const due = this.#warningDue;
    this.#warningDue = false;
    return due;
  }

  /** Today's calls of the chain, this holder's included. */
  get today(): number {
    return callsToday(this.#record, this.#now()) + this.#calls;
  }

  /** What a write stores (nothing before this holder's first call). */
  attributes(): { readonly tokenCalls?: TokenCalls } {
    return this.#calls > 0 ? { tokenCalls: { day: utcDay(this.#now()), count: this.today } } : {};
  }
}

/**
 * Throttled when the chain's token calls today (`callsToday`, this holder's included: a lease
 * session's `tokenCallsToday`) reached the cap: nothing may be sent until UTC midnight.
 */
export function capReached(connectionId: string, callsToday: number, nowMs: number): Throttled | undefined {
  if (callsToday < TOKEN_CALLS_PER_DAY) return undefined;
  return new Throttled(
    `connection "${connectionId}": ${TOKEN_CALLS_PER_DAY} token calls today for this app and user, Exact's announced daily cap; the next one after UTC midnight`,
    { retryAfterSeconds: Math.max(1, Math.ceil(((utcDay(nowMs) + 1) * DAY_MS - nowMs) / 1000)) },
  );
}

/**
 * TokenCallsHigh, once, when one of `session`'s token calls took the chain's count today to
 * TOKEN_CALLS_WARN_AT (CallLedger.count). Every door that makes a token call (a refresh or probe:
 * token-protocol.ts; a seed's code exchange: onboarding.ts; a heal's: heal-door.ts) calls it after
 * the writes that recorded the call's outcome, so the event follows the count it reports.
 */
export async function warnIfHigh(
  deps: Pick<EngineDeps, "events" | "log" | "now">,
  session: { readonly connectionId: string; readonly generation: number; takeTokenCallsWarning(): boolean },
): Promise<void> {
  if (session.takeTokenCallsWarning()) {
    await announce(deps, BrokerEventType.TokenCallsHigh, session, EventReason.DailyCap);
  }
}
