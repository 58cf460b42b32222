import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { DueChainMessage, RefreshQueue } from "../chain/refresh-dispatch.js";
import { SEND_BATCH_SIZE } from "../chain/refresh-dispatch.js";
import { CONNECTION_ID_PATTERN } from "../handlers/connection-id.js";

/** A queued body that is not a due-chain message (not from this broker's dispatcher). */
export class MalformedRefreshMessage extends Error {
  override readonly name = "MalformedRefreshMessage";
}

/** The message body: the connection and the dispatcher's claim, nothing secret. */
interface DueChainBody {
  readonly connectionId: string;
  readonly dueAtMs: number;
  /**
   * The claim's re-dispatch time; `dueAtMs` itself when the chain was not claimed, which reads
   * the same (due-chain-work.ts withDispatchedDueAt) and keeps the body readable by workers of
   * releases that required the field (a deploy runs both for a moment).
   */
  readonly redispatchAtMs: number;
}

/**
 * The dispatcher's queue in AWS: one SendMessageBatch per call, each entry with its own
 * DelaySeconds (the chain's due time). The entries SQS refuses come back to the dispatcher,
 * which sends those again.
 */
export class SqsRefreshQueue implements RefreshQueue {
  readonly #queueUrl: string;
  readonly #client: SQSClient;

  constructor(options: { readonly queueUrl: string; readonly client?: SQSClient }) {
    this.#queueUrl = options.queueUrl;
    this.#client = options.client ?? new SQSClient({});
  }

  async send(messages: readonly DueChainMessage[]): Promise<readonly DueChainMessage[]> {
    if (messages.length === 0) return [];
    if (messages.length > SEND_BATCH_SIZE) {
      throw new RangeError(
        `a SendMessageBatch holds at most ${SEND_BATCH_SIZE} messages, got ${messages.length}`,
      );
    }
    const out = await this.#client.send(
      new SendMessageBatchCommand({
        QueueUrl: this.#queueUrl,
        Entries: messages.map((message, i) => ({
          Id: String(i),
          DelaySeconds: message.delaySeconds,
          MessageBody: JSON.stringify({
            connectionId: message.connectionId,
            dueAtMs: message.dueAtMs,
            redispatchAtMs: message.redispatchAtMs ?? message.dueAtMs,
          } satisfies DueChainBody),
        })),
      }),
    );
    return (out.Failed ?? []).flatMap((entry) => {
      const refused = messages[Number(entry.Id)];
      return refused ? [refused] : [];
    });
  }
}

/**
 * Reads a queued body back into the worker's message (its delay is spent: 0).
 * @throws MalformedRefreshMessage for anything the dispatcher did not write
 */
export function parseDueChainMessage(body: string): DueChainMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new MalformedRefreshMessage("a refresh message is not JSON");
  }
  const { connectionId, dueAtMs, redispatchAtMs } = (parsed ?? {}) as Partial<
    Record<keyof DueChainBody, unknown>
  >;
  if (typeof connectionId !== "string" || !CONNECTION_ID_PATTERN.test(connectionId)) {
    throw new MalformedRefreshMessage("a refresh message has no valid connectionId");
  }
  if (
    !Number.isSafeInteger(dueAtMs) ||
    (redispatchAtMs !== undefined && !Number.isSafeInteger(redispatchAtMs))
  ) {
    throw new MalformedRefreshMessage(
      "a refresh message has no valid dueAtMs, or an invalid redispatchAtMs (epoch ms)",
    );
  }
  const claimed = redispatchAtMs !== undefined && redispatchAtMs !== dueAtMs;
  return {
    connectionId,
    dueAtMs: dueAtMs as number,
    ...(claimed ? { redispatchAtMs: redispatchAtMs as number } : {}),
    delaySeconds: 0,
  };
}
