import type { DueChainMessage, RefreshQueue } from "../../lib/chain/refresh-dispatch.js";

/** The dispatcher's queue in memory: what was sent, in order; `failNext` makes sends throw. */
export class MemoryRefreshQueue implements RefreshQueue {
  readonly sent: DueChainMessage[] = [];
  failNext = 0;

  /** Connection IDs whose next message the queue refuses (a `Failed` entry), once each. */
  readonly refuseNext = new Set<string>();

  async send(messages: readonly DueChainMessage[]): Promise<readonly DueChainMessage[]> {
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error("queue unavailable");
    }
    const refused = messages.filter((m) => this.refuseNext.delete(m.connectionId));
    this.sent.push(...messages.filter((m) => !refused.includes(m)));
    return refused;
  }

  /** Takes every message sent so far (as SQS hands them to the worker: the delay spent). */
  drain(): DueChainMessage[] {
    return this.sent.splice(0).map((message) => ({ ...message, delaySeconds: 0 }));
  }
}
