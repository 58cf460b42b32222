import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, it } from "vitest";
import type { EngineLog } from "../../lib/chain/engine-deps.js";
import { LambdaHealTrigger } from "../../lib/chain/heal-trigger.js";
import { type BrokerEvent, EVENT_SOURCE } from "../../lib/events/broker-events.js";
import { EventBridgePublisher, LogPublisher } from "../../lib/events/event-publishers.js";

const event: BrokerEvent = {
  type: "ChainBroken",
  detail: { connectionId: "acme", generation: 7, reason: "lost_answer", at: "2026-11-26T12:00:00.000Z" },
};

function capturingLog(): EngineLog & { lines: Array<[string, string, unknown]> } {
  const lines: Array<[string, string, unknown]> = [];
  return {
    lines,
    info: (message, ...extra) => lines.push(["info", message, extra[0]]),
    warn: (message, ...extra) => lines.push(["warn", message, extra[0]]),
    error: (message, ...extra) => lines.push(["error", message, extra[0]]),
  };
}

describe("EventBridgePublisher", () => {
  const eventBridge = mockClient(EventBridgeClient);
  afterEach(() => eventBridge.reset());

  it("puts the event on the broker's bus with source exact-token-broker", async () => {
    eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const publisher = new EventBridgePublisher({
      busName: "broker-bus",
      log: capturingLog(),
      client: new EventBridgeClient({}),
    });

    await publisher.publish(event);

    expect(eventBridge.commandCalls(PutEventsCommand)[0]?.args[0].input).toEqual({
      Entries: [
        {
          EventBusName: "broker-bus",
          Source: EVENT_SOURCE,
          DetailType: "ChainBroken",
          Detail: JSON.stringify(event.detail),
        },
      ],
    });
  });

  it("logs, and never throws, when EventBridge refuses or fails", async () => {
    const log = capturingLog();
    const publisher = new EventBridgePublisher({
      busName: "broker-bus",
      log,
      client: new EventBridgeClient({}),
    });
    let calls = 0;
    eventBridge.on(PutEventsCommand).callsFake(async () => {
      calls += 1;
      if (calls === 1) return { FailedEntryCount: 1, Entries: [{ ErrorCode: "InternalFailure" }] };
      throw new Error("throttled");
    });

    await expect(publisher.publish(event)).resolves.toBeUndefined();
    await expect(publisher.publish(event)).resolves.toBeUndefined();

    expect(log.lines.map(([level, message]) => [level, message])).toEqual([
      ["error", "event not accepted by EventBridge"],
      ["error", "event could not be sent"],
    ]);
  });
});

describe("LogPublisher", () => {
  it("writes the event as a log line locally", async () => {
    const log = capturingLog();
    await new LogPublisher(log).publish(event);
    expect(log.lines).toEqual([
      ["warn", "event ChainBroken", { eventType: "ChainBroken", source: EVENT_SOURCE, ...event.detail }],
    ]);
  });
});

describe("LambdaHealTrigger", () => {
  const lambda = mockClient(LambdaClient);
  afterEach(() => lambda.reset());

  it("invokes fallback-login asynchronously with the connection ID only", async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
    new LambdaHealTrigger({
      functionName: "fallback-login",
      log: capturingLog(),
      client: new LambdaClient({}),
    }).trigger("acme");
    await new Promise((resolve) => setImmediate(resolve));

    const input = lambda.commandCalls(InvokeCommand)[0]?.args[0].input;
    expect(input).toMatchObject({ FunctionName: "fallback-login", InvocationType: "Event" });
    expect(JSON.parse(new TextDecoder().decode(input?.Payload as Uint8Array))).toEqual({
      connectionId: "acme",
    });
  });

  it("logs a failed invoke instead of failing the vend that triggered it", async () => {
    lambda.on(InvokeCommand).rejects(new Error("AccessDenied"));
    const log = capturingLog();
    new LambdaHealTrigger({ functionName: "fallback-login", log, client: new LambdaClient({}) }).trigger(
      "acme",
    );
    await new Promise((resolve) => setTimeout(resolve, 10));

    expect(log.lines[0]?.[1]).toBe("could not invoke fallback-login");
  });
});
