import { DeleteItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import {
  DISPATCH_LEAD_MS,
  type DueChainMessage,
  OVERDUE_AFTER_MS,
  REDISPATCH_AFTER_MS,
} from "../../lib/chain/refresh-dispatch.js";
import { dispatchCursorKey } from "../../lib/chain/table-definition.js";
import type { CaseRun, Door, Invocation, Role } from "./case-run.js";
import { type DueChain, SCHEDULE_TICK_MS } from "./invariants.js";
import { seed, verifyingChain } from "./scenarios.js";
import type { CampaignConnection } from "./world.js";

/**
 * The scheduled refresh at scale (refresh-dispatch.ts, refresh-worker.ts) as doors: the
 * schedule's dispatch, and the worker on a delivered message. After the door, the queue runs on
 * (`queueRunsOn`): the schedule ticks every minute on the campaign's clock, and every message is
 * delivered when its delay is over, twice (SQS delivers at least once), to two workers at once.
 */

/** The refresh function's timeout with a queue (lib/infra/function-settings.ts, DISPATCH_SECONDS). */
const DISPATCH_TIMEOUT_MS = 60_000;
/** The refresh-worker's timeout: a window's wait (30 s), a lease (20 s), 5 s. */
const WORKER_TIMEOUT_MS = 55_000;
/** Exact's limit on a refresh token's age. */
const REFRESH_TOKEN_LIFE_MS = 30 * 86_400_000;
/** How far ahead of a hot chain's window the door's tick runs: inside the dispatcher's 90 s lead. */
const TICK_BEFORE_WINDOW_MS = 40_000;
/** Ticks and deliveries the queue may take after the door before the case counts as not settling. */
const MAX_QUEUE_STEPS = 40;

/** The schedule's tick: the dispatcher, as the refresh function runs it. */
function dispatch(invocation: Invocation) {
  const { dispatch: dispatcher, deps } = invocation.broker;
  if (!dispatcher) throw new Error("the campaign's broker has no refresh queue");
  return dispatcher.run({ deadlineMs: deps.now() + DISPATCH_TIMEOUT_MS });
}

/**
 * The cases of a file share one table, and so the dispatcher's cursor (dispatch-cursor.ts): an
 * earlier case's may stand ahead of this case's clock. Each queue case starts as a deployment's
 * first tick does, without one.
 */
async function withoutCursor(run: CaseRun): Promise<void> {
  await run.world.dynamo.send(
    new DeleteItemCommand({ TableName: run.world.tableName, Key: marshall({ pk: dispatchCursorKey }) }),
  );
}

/** The refresh-worker on one message SQS delivered; what it did with the chain is recorded. */
async function work(run: CaseRun, invocation: Invocation, message: DueChainMessage) {
  const { refreshWorker, deps } = invocation.broker;
  const summary = await refreshWorker.run([message], deps.now() + WORKER_TIMEOUT_MS);
  for (const [outcome, count] of Object.entries(summary.outcomes)) {
    if (count === 0) continue;
    run.queue.workOutcomes.push({
      owner: invocation.tap.owner,
      connectionId: message.connectionId,
      outcome,
      atMs: deps.now(),
    });
  }
  return summary;
}

async function tick(run: CaseRun, role: Role): Promise<void> {
  run.queue.lastTickAtMs = run.world.clock.now();
  await run.invoke(role, dispatch);
}

/** Delivers a message twice at once (SQS delivers at least once). */
async function deliverTwice(run: CaseRun, message: DueChainMessage): Promise<void> {
  await Promise.all([
    run.invoke("recovery", (invocation) => work(run, invocation, message)),
    run.invoke("recovery", (invocation) => work(run, invocation, message)),
  ]);
}

/** The chain is due now (before any claim): the case must see it worked on (invariants.ts). */
async function expectDue(
  run: CaseRun,
  connection: CampaignConnection,
  kind: DueChain["kind"],
): Promise<void> {
  const item = await run.item(connection);
  if (item.dueAtMs === undefined)
    throw new Error(`${run.door.name} setup: ${connection.connectionId} is not due`);
  run.queue.dueChains.push({
    connectionId: connection.connectionId,
    kind,
    dueAtMs: item.dueAtMs,
    expiresAtMs:
      kind === "hot"
        ? (item.accessExpiresAtMs ?? 0)
        : (item.refreshIssuedAtMs ?? item.createdAtMs) + REFRESH_TOKEN_LIFE_MS,
  });
}

/** A hot chain: seeded and vended once (its due time is its window). */
async function hotChain(run: CaseRun, connection: CampaignConnection): Promise<void> {
  await seed(run, connection);
  await run.invoke("setup", (invocation) => run.vend(invocation, 0, connection));
}

/** The message each worker door's invocation is delivered. */
const doorMessages = new WeakMap<CaseRun, DueChainMessage>();

function doorMessage(run: CaseRun): DueChainMessage {
  const message = doorMessages.get(run);
  if (!message) throw new Error(`${run.door.name}: the setup queued nothing`);
  return message;
}

/**
 * The schedule's tick queues the door's chain; the clock moves to the message's delivery. A
 * chain due within a tick's lead is queued as it falls due (no claim); one due already (an
 * identity check, a keep-alive) is let wait until a tick finds it overdue and queues it with a
 * claim (refresh-dispatch.ts): the worker doors see both kinds of message.
 */
async function deliveredToDoor(run: CaseRun): Promise<void> {
  const { clock } = run.world;
  const dueAtMs = (await run.item()).dueAtMs ?? clock.now();
  if (dueAtMs <= clock.now() + DISPATCH_LEAD_MS - SCHEDULE_TICK_MS)
    clock.advanceTo(dueAtMs + OVERDUE_AFTER_MS);
  await tick(run, "setup");
  const { message, deliverAtMs } = run.queue.take(run.connection.connectionId);
  doorMessages.set(run, message);
  run.world.clock.advanceTo(deliverAtMs);
  run.queue.doorStartedAtMs = run.world.clock.now();
}

/**
 * After the door, the queue runs on until every due chain was worked on, every connection is
 * ACTIVE and no message is on its way, or until a re-dispatch and two ticks after the last due
 * time: ticks a minute apart, each message delivered (twice) once its delay is over.
 */
export const queueRunsOn =
  (options: { readonly workerDoor: boolean }) =>
  async (run: CaseRun): Promise<void> => {
    const { clock } = run.world;
    const { queue } = run;
    queue.doorEndedAtMs = clock.now();
    queue.workFaulted = options.workerDoor && run.doorTap?.hit !== undefined;
    const lastDueMs = Math.max(queue.doorEndedAtMs, ...queue.dueChains.map((c) => c.dueAtMs));
    const horizonMs = lastDueMs + REDISPATCH_AFTER_MS + 2 * SCHEDULE_TICK_MS;
    for (let step = 0; step < MAX_QUEUE_STEPS; step++) {
      if (queue.pending.length === 0 && (await queueSettled(run))) return;
      const nextTickMs = (queue.lastTickAtMs ?? clock.now()) + SCHEDULE_TICK_MS;
      const nextDeliveryMs = Math.min(...queue.pending.map((p) => p.deliverAtMs));
      const atMs = Math.min(nextTickMs, nextDeliveryMs);
      if (atMs > horizonMs) return;
      clock.advanceTo(atMs);
      if (nextDeliveryMs <= nextTickMs) {
        for (const { message } of queue.takeDue()) await deliverTwice(run, message);
      } else {
        await tick(run, "recovery");
      }
    }
    run.log.harness.push(`the queue ran ${MAX_QUEUE_STEPS} steps after the door and did not settle`);
  };

/** Every due chain renewed (or, hot no longer, cooled) since the door started, and every connection ACTIVE. */
async function queueSettled(run: CaseRun): Promise<boolean> {
  const { queue } = run;
  const renewed = new Set(
    run.log.renewals.filter((r) => r.atMs >= queue.doorStartedAtMs).map((r) => r.connectionId),
  );
  for (const done of queue.workOutcomes) if (done.outcome === "cooled") renewed.add(done.connectionId);
  if (!queue.dueChains.every((c) => renewed.has(c.connectionId))) return false;
  for (const c of run.connections) if ((await run.item(c)).status !== ChainStatus.Active) return false;
  return true;
}

/**
 * Q1. The schedule's dispatch: an idle chain whose keep-alive is 71 s overdue (the door's
 * connection), a hot chain whose window opens in 40 s, and a hot chain whose window opens in
 * 150 s, past the dispatcher's 90 s lead: the door queues the first two (one SendMessageBatch),
 * the hot one as it falls due and the overdue one with a claim; the third waits for the next
 * tick (the dispatcher's cursor stops at the lead). A hang lets another dispatch run meanwhile
 * (a late or repeated schedule); a door that fails leaves the cursor, and the next tick queues
 * what it did not.
 */
export const dispatchDoor: Door = {
  name: "refresh dispatch (hot, keep-alive, later)",
  mode: "code",
  async setup(run) {
    const { clock } = run.world;
    await withoutCursor(run);
    await seed(run);
    const idle = await run.item();
    // The hot chain's window opens 571 s after its seed: 40 s before it, the idle chain's
    // keep-alive is overdue by more than OVERDUE_AFTER_MS.
    clock.advanceTo((idle.dueAtMs ?? clock.now()) - 460_000);
    const hot = await run.addPeer();
    await hotChain(run, hot);
    clock.advanceMs(110_000);
    const later = await run.addPeer();
    await hotChain(run, later);
    const hotItem = await run.item(hot);
    clock.advanceTo((hotItem.dueAtMs ?? clock.now()) - TICK_BEFORE_WINDOW_MS);
    await expectDue(run, run.connection, "keep-alive");
    await expectDue(run, hot, "hot");
    await expectDue(run, later, "hot");
    run.queue.doorStartedAtMs = clock.now();
    run.queue.lastTickAtMs = clock.now();
  },
  act: (_run, invocation) => dispatch(invocation),
  compete: (run) => tick(run, "competitor"),
  followUp: queueRunsOn({ workerDoor: false }),
};

/** A worker door: the door's message delivered to the worker; a hang lets SQS's second delivery in. */
function workerDoor(name: string, setup: Door["setup"]): Door {
  return {
    name,
    mode: "code",
    async setup(run) {
      await withoutCursor(run);
      await setup(run);
    },
    act: (run, invocation) => work(run, invocation, doorMessage(run)),
    compete: (run) => run.invoke("competitor", (invocation) => work(run, invocation, doorMessage(run))),
    followUp: queueRunsOn({ workerDoor: true }),
  };
}

/** Q2. The worker on a hot chain's message, delivered as its window opens: the refresh. */
export const workerHot = workerDoor("refresh worker (hot)", async (run) => {
  await hotChain(run, run.connection);
  const item = await run.item();
  run.world.clock.advanceTo((item.dueAtMs ?? run.world.clock.now()) - TICK_BEFORE_WINDOW_MS);
  await expectDue(run, run.connection, "hot");
  await deliveredToDoor(run);
});

/** Exact's answer to a refresh before the access token's last 30 s (../shared/exact-online.md). */
const TOO_EARLY = {
  endpoint: "token",
  status: 400,
  headers: { Reason: "TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired" },
  json: { error: "access_denied", error_description: "Rate limit exceeded: access_token not expired" },
} as const;

/**
 * Q2b. As Q2, but Exact answers the door's first token call "too early" (its clock ahead of
 * ours): the worker waits out the 5 s backoff and refreshes again in the same run
 * (due-chain-work.ts), so every call of that second lease and its commit is faulted too. The
 * refusal is the door's: one the door never reached is withdrawn before the queue runs on.
 */
export const workerHotRetried: Door = {
  ...workerHot,
  name: "refresh worker (hot, too early once)",
  act: (run, invocation) => {
    run.world.sim.addScript({ ...TOO_EARLY, clientId: run.connection.clientId });
    return work(run, invocation, doorMessage(run));
  },
  async followUp(run) {
    run.world.sim.clearScripts();
    await workerHot.followUp?.(run);
  },
};

/** Q3. The worker on an idle chain's message, its keep-alive (25 days) due: the keep-alive refresh. */
export const workerKeepalive = workerDoor("refresh worker (keep-alive)", async (run) => {
  await seed(run);
  const item = await run.item();
  run.world.clock.advanceTo((item.dueAtMs ?? run.world.clock.now()) + 1_000);
  await expectDue(run, run.connection, "keep-alive");
  await deliveredToDoor(run);
});

/** Q4. The worker on a VERIFYING chain's message (its seed's /current/Me failed): the identity check. */
export const workerVerifies = workerDoor("refresh worker (identity check)", async (run) => {
  await verifyingChain(run);
  await deliveredToDoor(run);
});
