import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { describe, expect, it } from "vitest";
import type { HealTrigger } from "../../lib/chain/engine-deps.js";
import { DEADLINE_MARGIN_MS } from "../../lib/handlers/deadline.js";
import { healHandoff } from "../../lib/handlers/heal-handoff.js";

/** A trigger whose hand-off takes `handOffMs`: records each wait and when it ended. */
function slowTrigger(handOffMs: number) {
  const waits: Array<number | undefined> = [];
  const events: string[] = [];
  const trigger: HealTrigger = {
    trigger: (connectionId) => void events.push(`trigger ${connectionId}`),
    handedOff: async (timeoutMs) => {
      waits.push(timeoutMs);
      await new Promise((resolve) => setTimeout(resolve, handOffMs));
      events.push("handed off");
    },
  };
  return { trigger, waits, events };
}

const context = (remainingMs: number) =>
  ({ getRemainingTimeInMillis: () => remainingMs }) as unknown as Context;

describe("healHandoff", () => {
  it("holds the answer until the heals the invocation triggered are handed off, within its remaining time", async () => {
    const { trigger, waits, events } = slowTrigger(30);
    const handler = middy<{ connectionId: string }, string>()
      .use(healHandoff(trigger))
      .handler(async (event) => {
        trigger.trigger(event.connectionId);
        return "answer";
      });

    const answer = await handler({ connectionId: "acme" }, context(10_000));
    events.push(`answered ${answer}`);

    expect(events).toEqual(["trigger acme", "handed off", "answered answer"]);
    expect(waits).toEqual([10_000 - DEADLINE_MARGIN_MS]);
  });

  it("holds an error the same way, and the error still reaches the caller", async () => {
    const { trigger, events } = slowTrigger(30);
    const handler = middy<{ connectionId: string }, string>()
      .use(healHandoff(trigger))
      .handler(async (event) => {
        trigger.trigger(event.connectionId);
        throw new Error("ChainBusy");
      });

    await expect(handler({ connectionId: "acme" }, context(10_000))).rejects.toThrow("ChainBusy");
    expect(events).toEqual(["trigger acme", "handed off"]);
  });

  it("waits without a limit of its own outside Lambda (no context)", async () => {
    const { trigger, waits } = slowTrigger(0);
    const handler = middy<unknown, string>()
      .use(healHandoff(trigger))
      .handler(async () => "answer");

    await handler({}, undefined as unknown as Context);

    expect(waits).toEqual([undefined]);
  });
});
