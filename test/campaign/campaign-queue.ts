import { type AttributeValue, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type { DueChainMessage, RefreshQueue } from "../../lib/chain/refresh-dispatch.js";
import type { CampaignClock } from "./campaign-clock.js";
import { Fault, InjectedFailure, QUEUE_SEND, type Tap } from "./fault-plan.js";
import type { DueChain, QueueClaim, QueueFacts, QueueSend, WorkOutcome } from "./invariants.js";

/** A message on its way to the worker: SQS holds it back until `deliverAtMs`. */
export interface PendingMessage {
  readonly message: DueChainMessage;
  readonly deliverAtMs: number;
}

/** Thrown by a send whose batch SQS took while its answer was lost (a timeout after the request). */
export class InjectedLostSend extends Error {
  constructor() {
    super(`injected: no answer from SQS after the batch reached it (${QUEUE_SEND})`);
    this.name = "TimeoutError";
  }
}

/**
 * One case's refresh queue (SQS, in memory, on the campaign's clock): a message sent with
 * `delaySeconds` is delivered that long after SQS took it. It records what it took and every
 * claim DynamoDB carried out, for the checker; the case's scenario (queue-scenarios.ts) delivers
 * the messages to workers, twice each, as SQS may.
 */
export class CampaignQueue {
  readonly #clock: CampaignClock;
  readonly #pending: PendingMessage[] = [];
  readonly sends: QueueSend[] = [];
  readonly claims: QueueClaim[] = [];
  readonly dueChains: DueChain[] = [];
  readonly workOutcomes: WorkOutcome[] = [];
  /** Set by the queue doors' setup and follow-up (queue-scenarios.ts). */
  doorStartedAtMs = 0;
  doorEndedAtMs = 0;
  workFaulted = false;
  /** When the schedule last ran the dispatcher; the next tick is a minute later. */
  lastTickAtMs: number | undefined;

  constructor(clock: CampaignClock) {
    this.#clock = clock;
  }

  /** SQS took a batch; `answered`: its sender got the answer. */
  took(sender: string, messages: readonly DueChainMessage[], answered: boolean): void {
    const atMs = this.#clock.now();
    this.sends.push({
      sender,
      atMs,
      answered,
      messages: messages.map((m) => ({
        connectionId: m.connectionId,
        dueAtMs: m.dueAtMs,
        ...(m.redispatchAtMs !== undefined ? { redispatchAtMs: m.redispatchAtMs } : {}),
        delaySeconds: m.delaySeconds,
      })),
    });
    for (const message of messages) {
      this.#pending.push({ message, deliverAtMs: atMs + message.delaySeconds * 1000 });
    }
  }

  /** A DynamoDB command that landed: recorded if it is a dispatcher's claim (UnleasedWrites.claimDue). */
  landed(owner: string, callName: string, input: unknown): void {
    if (callName !== `dynamo:${UpdateItemCommand.name}`) return;
    const claim = claimOf(input);
    if (claim) this.claims.push({ owner, ...claim, atMs: this.#clock.now() });
  }

  /** The messages due for delivery now, in delivery order, taken off the queue. */
  takeDue(): PendingMessage[] {
    const nowMs = this.#clock.now();
    const due = this.#pending
      .filter((p) => p.deliverAtMs <= nowMs)
      .sort((a, b) => a.deliverAtMs - b.deliverAtMs);
    for (const p of due) this.#pending.splice(this.#pending.indexOf(p), 1);
    return due;
  }

  /** One message, taken off the queue (a worker door's): the earliest for `connectionId`. */
  take(connectionId: string): PendingMessage {
    const at = this.#pending.findIndex((p) => p.message.connectionId === connectionId);
    const [taken] = at < 0 ? [] : this.#pending.splice(at, 1);
    if (!taken) throw new Error(`no message queued for ${connectionId}`);
    return taken;
  }

  get pending(): readonly PendingMessage[] {
    return this.#pending;
  }

  facts(): QueueFacts {
    return {
      sends: this.sends,
      claims: this.claims,
      dueChains: this.dueChains,
      workOutcomes: this.workOutcomes,
      doorStartedAtMs: this.doorStartedAtMs,
      doorEndedAtMs: this.doorEndedAtMs,
      workFaulted: this.workFaulted,
    };
  }
}

/**
 * The refresh queue through the tap (`queue:send`): exception, SQS refused the batch; hang, the
 * send stalls past a lease while a competing dispatch runs, then SQS takes it; lost, SQS took
 * the batch and the dispatcher gets an error; crash, SQS took the batch and the dispatcher dies
 * before its claims (the crash where nothing was sent is the one at the query before it).
 */
export function tappedQueue(queue: CampaignQueue, tap: Tap): RefreshQueue {
  return {
    async send(messages) {
      const fault = await tap.next(QUEUE_SEND);
      if (fault === Fault.Exception) throw new InjectedFailure(QUEUE_SEND);
      if (fault === Fault.Hang) await tap.hang();
      queue.took(tap.owner, messages, fault === undefined || fault === Fault.Hang);
      if (fault === Fault.Crash) return tap.crash();
      if (fault === Fault.Lost) throw new InjectedLostSend();
      return [];
    },
  };
}

/**
 * A claim's UpdateItem (UnleasedWrites.claimDue): it sets `dueAtMs` (and `dueShard`, to the main
 * partition) and nothing else, conditioned on the due time the chain was found with.
 */
function claimOf(input: unknown): { connectionId: string; redispatchAtMs: number } | undefined {
  const update = input as
    | {
        Key?: Record<string, AttributeValue>;
        UpdateExpression?: string;
        ConditionExpression?: string;
        ExpressionAttributeNames?: Record<string, string>;
        ExpressionAttributeValues?: Record<string, AttributeValue>;
      }
    | undefined;
  const names = Object.entries(update?.ExpressionAttributeNames ?? {});
  const nameOf = (attr: string) => names.find(([, name]) => name === attr)?.[0];
  const due = nameOf("dueAtMs");
  const shard = nameOf("dueShard");
  const [setPart = "", removed] = (update?.UpdateExpression ?? "").split(" REMOVE ");
  const assignments = setPart.replace(/^SET /, "").split(/,\s*/);
  const assignment = assignments.find((a) => due !== undefined && a.startsWith(`${due} = `));
  const others = assignments.filter((a) => a !== assignment);
  const onlyShard = others.every((a) => shard !== undefined && a.startsWith(`${shard} = `));
  if (!due || !assignment || removed !== undefined || others.length > 1 || !onlyShard) return undefined;
  if (!update?.ConditionExpression?.includes(`${due} = :found`) || !update.Key) return undefined;
  const placeholder = assignment.slice(`${due} = `.length);
  const values = unmarshall(update.ExpressionAttributeValues ?? {}) as Record<string, unknown>;
  const { pk } = unmarshall(update.Key) as { pk: string };
  const redispatchAtMs = values[placeholder];
  if (typeof redispatchAtMs !== "number") return undefined;
  return { connectionId: pk.slice("CONN#".length), redispatchAtMs };
}
