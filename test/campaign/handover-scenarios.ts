import { ChainStatus } from "../../lib/chain/chain-record.js";
import { CLOCK_SKEW_BOUND_MS } from "../../lib/chain/timing.js";
import type { CaseRun, Door } from "./case-run.js";
import { expectStatus, heal, seed } from "./scenarios.js";

/**
 * The doors of two connections of one app: a code exchange for an Exact user another connection
 * holds, whose chain is handed over to it (chain-handover.ts, UnleasedWrites.adoptChain, the
 * guards of connection-registry.ts). Exact keeps one chain per app and user, so the exchange
 * ended the other connection's chain: the new one must land there, and the connection that was
 * seeded must end where it was (NEW, or its own chain restored). The checker judges both
 * connections: each holds Exact's live chain of the user it is meant to hold.
 */

/** Peer B of the door's app, seeded with its own user; the door's code is for B's user. */
async function userHeldByPeer(run: CaseRun): Promise<void> {
  const holder = await run.addPeer();
  await seed(run, holder);
  // The campaign's clock stands still unless something waits: a second apart, as two operators'
  // commands would be (of two chains of one user, the one started later is live).
  run.world.clock.advanceMs(1_000);
  run.scratch.user = holder.username;
  run.scratch.code = run.world.authorize(run.connection, holder.username);
}

/** `connection seed` of the door's connection with the door's code. */
const seedWithCode = (run: CaseRun, invocation: Parameters<Door["act"]>[1]) =>
  invocation.broker.onboarding.seed(run.connection.connectionId, run.scratch.code ?? "");

/** A second `connection seed` of the door's connection, with a fresh code of the same user (an operator trying again). */
const seedAgain = (run: CaseRun) =>
  run.invoke("competitor", (invocation) =>
    invocation.broker.onboarding.seed(
      run.connection.connectionId,
      run.world.authorize(run.connection, run.scratch.user ?? run.connection.username),
    ),
  );

/** H1. A seed of a NEW connection A with a code of the user connection B (same app) holds: B gets the chain, A goes back to NEW. */
export const seedHandsOver: Door = {
  name: "seed (user held by another connection)",
  mode: "code",
  setup: userHeldByPeer,
  act: seedWithCode,
  compete: seedAgain,
};

/** H2. A re-seed of ACTIVE A (its own user) with a code of the user B holds: B gets the chain, A's own comes back. */
export const reseedHandsOver: Door = {
  name: "re-seed (user held by another connection)",
  mode: "code",
  async setup(run) {
    await seed(run);
    await userHeldByPeer(run);
  },
  act: seedWithCode,
  compete: seedAgain,
};

/** The write that decides a hand-over (ChainHandover.run: `handOver` set under the lease). */
function decidesHandOver(callName: string, input: unknown): boolean {
  const names = (input as { ExpressionAttributeNames?: Record<string, string> } | undefined)
    ?.ExpressionAttributeNames;
  return callName === "dynamo:UpdateItemCommand" && Object.values(names ?? {}).includes("handOver");
}

/**
 * H2b. The hand-over resumed: the seed of H1 died right after it decided the hand-over (A is
 * VERIFYING with its `handOver` note, its lease expired). Fallback-login's heal of A finishes it
 * (PendingVerification's resume branch) without asking Exact again: B gets the chain, A goes
 * back to NEW.
 */
export const handOverResumed: Door = {
  name: "hand-over resumed (heal)",
  mode: "code",
  async setup(run) {
    await userHeldByPeer(run);
    const died = await run.invoke(
      "setup",
      (invocation) => seedWithCode(run, invocation),
      undefined,
      decidesHandOver,
    );
    if (died.kind !== "crashed")
      throw new Error(`${run.door.name} setup: the seed did not stop at its decision`);
    await expectStatus(run, ChainStatus.Verifying);
    const item = await run.item();
    if (!item.handOver) throw new Error(`${run.door.name} setup: no hand-over decided`);
    run.world.clock.advanceTo((item.leaseUntilMs ?? 0) + CLOCK_SKEW_BOUND_MS + 1_000);
  },
  act: (run, invocation) => invocation.broker.heal.heal(run.connection.connectionId),
  compete: heal,
};

/**
 * H3. A seed of NEW A with a code of a user whose guard names connection B, which is gone (an
 * interrupted `connection remove` left the guard): A takes the guard over and keeps the chain.
 */
export const seedOverStaleGuard: Door = {
  name: "seed (stale guard)",
  mode: "code",
  async setup(run) {
    const holder = await run.addPeer();
    await seed(run, holder);
    await run.dropPeer(holder);
    run.expectUser(run.connection, holder.username);
    run.scratch.user = holder.username;
    run.scratch.code = run.world.authorize(run.connection, holder.username);
  },
  act: seedWithCode,
  compete: seedAgain,
};

/**
 * H4. A re-seed of ACTIVE A with a code of another user of the app, whom no connection holds: A
 * keeps the new chain and frees its old user's guard. Should the re-seed not get that far, the
 * operator runs it again with a fresh code.
 */
export const reseedNewUser: Door = {
  name: "re-seed (another user)",
  mode: "code",
  async setup(run) {
    await seed(run);
    const user = run.addExactUser();
    run.expectUser(run.connection, user);
    run.scratch.user = user;
    run.scratch.code = run.world.authorize(run.connection, user);
  },
  act: seedWithCode,
  compete: seedAgain,
  async operatorStep(run, connection, item) {
    const expected = run.expectedUser(connection);
    const settledElsewhere =
      (item.status === ChainStatus.Active || item.status === ChainStatus.Suspect) &&
      item.exactUserName !== expected &&
      !run.world.store.leaseIsLive(item);
    if (!settledElsewhere) return false;
    await run.invoke("recovery", (invocation) => run.seed(invocation, connection));
    return true;
  },
};
