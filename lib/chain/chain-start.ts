import { ChainBusy, ConnectionNotFound } from "../errors.js";
import {
  type ChainRecord,
  ChainSource,
  ChainStatus,
  type RetiredChain,
  type VerificationNote,
} from "./chain-record.js";
import type { EngineDeps } from "./engine-deps.js";
import type { HistoryContext } from "./history-entry.js";
import type { VerifyOutcome } from "./identity-check.js";
import { withIncarnation } from "./incarnation.js";
import { CLOCK_SKEW_BOUND_MS } from "./timing.js";
import type { PendingVerification } from "./verification.js";

/*
 * What the operator's chain-starting doors share: a seed (an authorization code, onboarding.ts)
 * and an import (another system's refresh token, chain-import.ts). Both store Exact's answer as a
 * chain of this connection awaiting its `/current/Me` check, which then decides whose it is.
 */

/** Where a chain started by a seed or an import ended up, once its identity check passed. */
export interface SeedResult {
  /** The connection that now holds the chain. */
  readonly connectionId: string;
  /** Set when the chain was of a user another connection already holds: the tokens went there. */
  readonly redirectedFrom?: string;
  readonly exactUserId: string;
  readonly exactUserName: string;
  readonly division: number | null;
  readonly generation: number;
}

const WAIT_POLL_MS = 250;

/**
 * The connection, with an incarnation, no chain of its own still awaiting its check (that one
 * is finished first: it may be the live chain), and no live lease (waited for, briefly: at most
 * one lease and the skew bound, and never past `deadlineMs`).
 * @throws ConnectionNotFound; ChainBusy (retryable) when the wait ends first
 */
export async function readyForChainStart(
  deps: EngineDeps,
  verification: PendingVerification,
  connectionId: string,
  deadlineMs: number | undefined,
  history: HistoryContext,
): Promise<ChainRecord> {
  const { store, now, sleep, config } = deps;
  const giveUpAtMs = Math.min(
    deadlineMs ?? Number.POSITIVE_INFINITY,
    now() + config.leaseMs + CLOCK_SKEW_BOUND_MS,
  );
  for (let verified = false; ; ) {
    const read = await store.get(connectionId);
    const record = read && (await withIncarnation(deps, read));
    if (!record) throw new ConnectionNotFound(`connection "${connectionId}" does not exist`);
    const busy = store.leaseIsLive(record) || record.incarnation === undefined;
    if (!busy && record.status === ChainStatus.Verifying && !verified) {
      verified = true;
      await verification.finish(record, {
        vended: false,
        ...(deadlineMs !== undefined ? { deadlineMs } : {}),
        history,
      });
      continue;
    }
    if (!busy && record.status !== ChainStatus.Verifying) return record;
    if (now() + WAIT_POLL_MS > giveUpAtMs) {
      throw new ChainBusy(
        `connection "${connectionId}" is busy (${record.status === ChainStatus.Verifying ? "an earlier chain's identity check is pending" : "another invocation holds its lease"}); try again`,
        { retryAfterSeconds: 5 },
      );
    }
    await sleep(WAIT_POLL_MS);
  }
}

/**
 * The verification note of a chain an operator starts on `record` (a seed, an import), its
 * request sent at `sentAtMs`: of two starts of one user, the later is live. The connection's live
 * chain is kept beside it until the new chain's identity shows whose it is.
 */
export function operatorStartNote(record: ChainRecord, sentAtMs: number): VerificationNote {
  const retired = retiredChain(record);
  return {
    source: ChainSource.Seed,
    startedAtMs: sentAtMs,
    statusBefore: record.status === ChainStatus.Healing ? ChainStatus.Broken : record.status,
    ...(retired ? { retired } : {}),
  };
}

/** The live chain a seed replaces, kept until the new chain's identity shows whose it is. */
export function retiredChain(record: ChainRecord): RetiredChain | undefined {
  if (record.status !== ChainStatus.Active && record.status !== ChainStatus.Suspect) return undefined;
  if (!record.refreshCt) return undefined;
  const {
    accessCt,
    accessIssuedAtMs,
    accessExpiresAtMs,
    windowOpensAtMs,
    refreshCt,
    refreshIssuedAtMs,
    refreshHash,
    chainStartedAtMs,
  } = record;
  return {
    ...(accessCt ? { accessCt, accessIssuedAtMs, accessExpiresAtMs, windowOpensAtMs } : {}),
    refreshCt,
    refreshIssuedAtMs,
    refreshHash,
    ...(chainStartedAtMs !== undefined ? { chainStartedAtMs } : {}),
    status: record.status,
    generation: record.generation,
  };
}

/**
 * The operator's answer for a started chain's identity check.
 * @throws the check's error (the chain stays stored, checked again automatically), or ChainBusy
 *   when the connection changed meanwhile
 */
export async function chainStartResult(
  deps: Pick<EngineDeps, "store">,
  connectionId: string,
  outcome: VerifyOutcome,
): Promise<SeedResult> {
  switch (outcome.kind) {
    case "verified":
      return { connectionId, ...identityOf(outcome.identity), generation: outcome.fresh.generation };
    case "handed_over": {
      const target = await deps.store.get(outcome.to);
      return {
        connectionId: outcome.to,
        redirectedFrom: connectionId,
        ...identityOf(outcome.identity),
        generation: target?.generation ?? 0,
      };
    }
    case "failed":
      throw outcome.error;
    default:
      throw new ChainBusy(
        `connection "${connectionId}" changed while its new chain was being stored; check exact-broker status`,
        { retryAfterSeconds: 5 },
      );
  }
}

function identityOf(me: { userId: string; userName: string; division: number | null }) {
  return { exactUserId: me.userId, exactUserName: me.userName, division: me.division };
}
