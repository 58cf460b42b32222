import { ExactUnavailable } from "../errors.js";
import { BrokerEventType, EventReason } from "../events/broker-events.js";
import type { ExactMe } from "../exact/oauth-client.js";
import { ChainStatus, type HandOverNote } from "./chain-record.js";
import { checkFailed, type VerifyOutcome } from "./check-failures.js";
import { pinnedDivisionOf } from "./division-check.js";
import { announce, type EngineDeps } from "./engine-deps.js";
import { HistoryOutcome } from "./history-entry.js";
import type { StartedChain } from "./identity-check.js";
import { withIncarnation } from "./incarnation.js";
import type { LeaseSession } from "./lease-session.js";
import { handedOver, handingOver } from "./lease-transitions.js";
import { dueAtAfter, prepareSealer, sealTokens } from "./token-seal.js";

type Landing = "landed" | "busy";

/**
 * Hands a verified chain that is not this connection's to the connection that holds its Exact
 * user (Exact ended that connection's chain when it started this one), then puts this connection
 * back where it was. Crash-safe in three steps, each resumable by a later lease:
 *
 *   1. under this connection's lease: the decision (`handOver`), so nothing here refreshes the
 *      chain the other connection may already hold, and nobody needs to ask Exact again;
 *   2. the chain lands on the other connection (UnleasedWrites.adoptChain: at most once, never
 *      over a chain that started later, only while that connection still holds that user);
 *   3. this connection: the chain it replaced comes back (a seed), or REAUTH_REQUIRED (a login
 *      with another user's credentials); the lease ends.
 */
export class ChainHandover {
  readonly #deps: EngineDeps;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  async run(session: LeaseSession, chain: StartedChain, note: HandOverNote): Promise<VerifyOutcome> {
    if (!(await session.keep(handingOver(note)))) return { kind: "superseded" };
    return this.finish(session, chain, note);
  }

  /** Steps 2 and 3, from a decision written before (by this invocation or one that stopped). */
  async finish(session: LeaseSession, chain: StartedChain, note: HandOverNote): Promise<VerifyOutcome> {
    const { now, log } = this.#deps;
    const identity: ExactMe = {
      userId: note.exactUserId,
      userName: note.exactUserName,
      division: note.division,
    };
    if (note.to !== undefined && (await this.#land(note.to, chain, note, session)) === "busy") {
      return checkFailed(
        this.#deps,
        session,
        new ExactUnavailable(
          `connection "${session.connectionId}": its new chain belongs to connection "${note.to}", which cannot take it yet`,
          { retryAfterSeconds: 30 },
        ),
        { afterLogin: false, counts: false },
      );
    }
    const retired = chain.note.retired;
    const reason = note.afterwards === "wrong_user" ? EventReason.WrongUser : EventReason.DuplicateUser;
    const back =
      note.afterwards === "restore"
        ? retired
          ? { restore: retired, status: retired.status }
          : { status: chain.note.statusBefore }
        : { status: ChainStatus.ReauthRequired, statusReason: reason, lastLoginFailure: reason };
    const to = note.to !== undefined ? { to: note.to } : {};
    if (!(await session.finish(handedOver({ ...back, ...to }, now())))) return { kind: "superseded" };
    log.info("chain handed over", {
      connectionId: session.connectionId,
      to: note.to ?? "nobody",
      afterwards: note.afterwards,
    });
    if (note.afterwards === "restore") {
      return note.to === undefined ? { kind: "superseded" } : { kind: "handed_over", to: note.to, identity };
    }
    await announce(this.#deps, BrokerEventType.ReauthRequired, session, reason);
    return note.afterwards === "duplicate_user" && note.to !== undefined
      ? { kind: "duplicate", owner: note.to, identity }
      : { kind: "wrong_user", identity };
  }

  /** Step 2: the chain on `owner`, sealed for its own incarnation; "busy" when it cannot take it now. */
  async #land(
    owner: string,
    chain: StartedChain,
    note: HandOverNote,
    session: LeaseSession,
  ): Promise<Landing> {
    const { store, cipher, config, now, log } = this.#deps;
    const { clientId } = session.record;
    const hash = chain.tokens.refresh?.refreshHash;
    // An implicit login's token starts no chain: there is nothing to hand over.
    if (hash === undefined || chain.issued.refreshToken === undefined) return "landed";
    const read = await store.get(owner);
    const target = read && (await withIncarnation(this.#deps, read));
    const startedAtMs = chain.note.startedAtMs;
    const settled = (t: typeof target): Landing | undefined => {
      if (!t) return "landed"; // removed meanwhile: nobody holds the user any more
      if (t.adoptedHash === hash || t.refreshHash === hash) return "landed";
      // A chain that started later lives there: ours died when it started.
      if ((t.chainStartedAtMs ?? 0) >= startedAtMs) return "landed";
      if (t.incarnation === undefined || t.verification) return "busy";
      if (t.clientId !== clientId || t.exactUserId !== note.exactUserId) {
        log.warn("the connection named by the user's guard holds another user; the chain goes nowhere", {
          connectionId: owner,
        });
        return "landed";
      }
      return undefined;
    };
    const early = settled(target);
    if (early !== undefined || !target) return early ?? "landed";
    const sealer = await prepareSealer(cipher, target);
    const tokens = await sealTokens(
      sealer,
      chain.issued,
      chain.tokens.access?.accessIssuedAtMs ?? now(),
      target.mode,
      config,
    );
    const identity = {
      exactUserId: note.exactUserId,
      exactUserName: note.exactUserName,
      // The target's pinned division stays what its consumers get (division-check.ts).
      division: pinnedDivisionOf(target) ?? note.division,
    };
    const due = dueAtAfter(target, tokens, now(), false, config);
    // The target's history names this lease's door and caller, and where the chain came from.
    const entry = session.history.peerEntry(
      { outcome: HistoryOutcome.Received, peer: session.connectionId },
      { generation: target.generation + 1, refreshHash: hash },
    );
    const adopted = await store.unleased.adoptChain(target, tokens, identity, startedAtMs, due, entry);
    if (adopted) {
      session.history.peerAdvanced(entry, adopted);
      return "landed";
    }
    return settled(await store.get(owner)) ?? "busy";
  }
}
