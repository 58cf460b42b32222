import { createServer } from "node:net";
import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutEventsCommand,
  PutRuleCommand,
  PutTargetsCommand,
} from "@aws-sdk/client-eventbridge";
import { CreateRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { CreateFunctionCommand, LambdaClient } from "@aws-sdk/client-lambda";
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  type Message,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { type AwsClientStub, mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { EngineLog } from "../../lib/chain/engine-deps.js";
import { LambdaHealTrigger } from "../../lib/chain/heal-trigger.js";
import { type BrokerEvent, BrokerEventType, EVENT_SOURCE } from "../../lib/events/broker-events.js";
import { EventBridgePublisher, LogPublisher } from "../../lib/events/event-publishers.js";
import { type MotoServer, startMotoServer } from "../support/moto-server.js";
import { describeWithMoto } from "../support/tool-gate.js";

// EventBridge and Lambda are served by moto_server over real HTTP wherever it can serve: an event
// travels from the publisher through a rule on the broker's bus to an SQS queue, and is read back
// from there. moto 5.2 delivers PutEvents to SQS targets synchronously (its docs, "events":
// put_events supports CloudWatch Log Group, Archive, SQS and EventBus targets). The mocked test
// says why moto cannot serve it; test/chain/lambda-heal-trigger.test.ts checks the heal trigger's
// signature and payload against a local endpoint (moto does not show them).

const REGION = "eu-west-1";
const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };
const BUS = "broker-bus";

const event: BrokerEvent = {
  type: BrokerEventType.ChainBroken,
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

/** An endpoint where nothing listens: every call fails to connect, as in an outage. */
async function closedPortEndpoint(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return `http://127.0.0.1:${address.port}`;
}

/** The `error` a publisher or trigger logged with its line, as the logger receives it. */
const loggedError = (line: [string, string, unknown] | undefined): Error | undefined =>
  (line?.[2] as { error?: Error } | undefined)?.error;

describeWithMoto("on moto_server", () => {
  let moto: MotoServer;
  let eventBridge: EventBridgeClient;
  let sqs: SQSClient;
  let queueUrl: string;

  /** The EventBridge envelopes the rule delivered to the queue since the last purge. */
  async function delivered(): Promise<Array<Record<string, unknown>>> {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    return Messages.map((message: Message) => JSON.parse(message.Body ?? "null") as Record<string, unknown>);
  }

  beforeAll(async () => {
    moto = await startMotoServer();
    const config = { region: REGION, endpoint: moto.endpoint, credentials: CREDENTIALS, maxAttempts: 1 };
    eventBridge = new EventBridgeClient(config);
    sqs = new SQSClient(config);
    ({ QueueUrl: queueUrl = "" } = await sqs.send(new CreateQueueCommand({ QueueName: "broker-events" })));
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }),
    );
    await eventBridge.send(new CreateEventBusCommand({ Name: BUS }));
    // The pattern the stack's alert rules use (lib/infra/observability.ts): source and detail-type.
    await eventBridge.send(
      new PutRuleCommand({
        Name: "chain-events",
        EventBusName: BUS,
        EventPattern: JSON.stringify({
          source: [EVENT_SOURCE],
          "detail-type": [BrokerEventType.ChainBroken],
        }),
      }),
    );
    await eventBridge.send(
      new PutTargetsCommand({
        Rule: "chain-events",
        EventBusName: BUS,
        Targets: [{ Id: "queue", Arn: Attributes?.QueueArn }],
      }),
    );
  });

  afterAll(async () => {
    eventBridge?.destroy();
    sqs?.destroy();
    await moto?.close();
  });

  describe("EventBridgePublisher", () => {
    beforeEach(async () => {
      await sqs.send(new PurgeQueueCommand({ QueueUrl: queueUrl }));
    });

    it("puts the event on the broker's bus, where a rule on its source and detail-type delivers it", async () => {
      const log = capturingLog();
      const publisher = new EventBridgePublisher({ busName: BUS, log, client: eventBridge });

      await publisher.publish(event);

      const envelopes = await delivered();
      expect(envelopes).toHaveLength(1);
      expect(envelopes[0]).toMatchObject({
        source: EVENT_SOURCE,
        "detail-type": BrokerEventType.ChainBroken,
        detail: event.detail,
        region: REGION,
      });
      expect(log.lines).toEqual([]);
    });

    it("logs, and never throws, when EventBridge refuses the call (no such bus)", async () => {
      const log = capturingLog();
      const publisher = new EventBridgePublisher({ busName: "no-such-bus", log, client: eventBridge });

      await expect(publisher.publish(event)).resolves.toBeUndefined();

      expect(log.lines.map(([level, message]) => [level, message])).toEqual([
        ["error", "event could not be sent"],
      ]);
      expect(loggedError(log.lines[0])?.name).toBe("ResourceNotFoundException");
      expect(log.lines[0]?.[2]).toMatchObject({ eventType: "ChainBroken", connectionId: "acme" });
      expect(await delivered()).toEqual([]);
    });

    it("logs, and never throws, when EventBridge cannot be reached", async () => {
      const log = capturingLog();
      const unreachable = new EventBridgeClient({
        region: REGION,
        endpoint: await closedPortEndpoint(),
        credentials: CREDENTIALS,
        maxAttempts: 1,
      });
      const publisher = new EventBridgePublisher({ busName: BUS, log, client: unreachable });

      await expect(publisher.publish(event)).resolves.toBeUndefined();
      unreachable.destroy();

      expect(log.lines.map(([level, message]) => [level, message])).toEqual([
        ["error", "event could not be sent"],
      ]);
      expect(String(loggedError(log.lines[0]))).toMatch(/ECONNREFUSED/);
    });
  });

  describe("LambdaHealTrigger", () => {
    const trigger = (log: EngineLog, functionName = "fallback-login") =>
      new LambdaHealTrigger({
        functionName,
        log,
        region: REGION,
        endpoint: moto.endpoint,
        credentials: async () => CREDENTIALS,
        maxAttempts: 1,
        // moto sets up its Lambda backend on the first call: over a second on a busy machine.
        httpTimeoutMs: 10_000,
      });

    it("logs a failed invoke (no such function) instead of failing the vend that triggered it", async () => {
      const log = capturingLog();

      trigger(log).trigger("acme");

      await vi.waitFor(() => expect(log.lines).toHaveLength(1), { timeout: 12_000 });
      expect(log.lines[0]?.slice(0, 2)).toEqual(["error", "could not invoke fallback-login"]);
      expect(log.lines[0]?.[2]).toMatchObject({ connectionId: "acme" });
      expect(loggedError(log.lines[0])?.name).toBe("ResourceNotFoundException");
    });

    it("has an asynchronous invoke of an existing function accepted (202), and logs nothing", async () => {
      // moto's Lambda without Docker accepts every invoke of a function it knows (its "lambda
      // simple" backend, chosen through its config API).
      const config = await fetch(`${moto.endpoint}/moto-api/config`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ lambda: { use_docker: false } }),
      });
      expect(config.status).toBe(201);
      const clientConfig = {
        region: REGION,
        endpoint: moto.endpoint,
        credentials: CREDENTIALS,
        maxAttempts: 1,
      };
      const iam = new IAMClient(clientConfig);
      const lambda = new LambdaClient(clientConfig);
      const { Role } = await iam.send(
        new CreateRoleCommand({ RoleName: "fallback-login-role", AssumeRolePolicyDocument: "{}" }),
      );
      await lambda.send(
        new CreateFunctionCommand({
          FunctionName: "heal-target",
          Runtime: "nodejs20.x",
          Role: Role?.Arn,
          Handler: "index.handler",
          Code: { ZipFile: new Uint8Array([0x50, 0x4b, 0x05, 0x06, ...new Array(18).fill(0)]) },
        }),
      );
      iam.destroy();
      lambda.destroy();
      const accepted = vi.fn();
      const log = capturingLog();
      const fetchSpy: typeof fetch = async (input, init) => {
        const response = await fetch(input, init);
        accepted(response.status);
        return response;
      };

      new LambdaHealTrigger({
        functionName: "heal-target",
        log,
        region: REGION,
        endpoint: moto.endpoint,
        credentials: async () => CREDENTIALS,
        maxAttempts: 1,
        httpTimeoutMs: 10_000,
        fetch: fetchSpy,
      }).trigger("acme");

      await vi.waitFor(() => expect(accepted).toHaveBeenCalled(), { timeout: 12_000 });
      expect(accepted).toHaveBeenCalledWith(202);
      await new Promise((resolve) => setImmediate(resolve));
      expect(log.lines).toEqual([]);
    });
  });
});

// moto answers PutEvents with a failed entry only for an entry without Source, DetailType or
// Detail, or with malformed Detail: none of which this publisher sends. AWS also fails single
// entries of an accepted call (ThrottlingException, InternalFailure), so this path is mocked.
describe("EventBridgePublisher, an entry refused within an accepted call (mocked: moto cannot)", () => {
  // Installed for this block only: a stub replaces `send` of every EventBridgeClient in the file.
  let eventBridge: AwsClientStub<EventBridgeClient>;
  beforeAll(() => {
    eventBridge = mockClient(EventBridgeClient);
  });
  afterAll(() => eventBridge.restore());

  it("logs the entry's error code and never throws", async () => {
    eventBridge
      .on(PutEventsCommand)
      .resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: "InternalFailure" }] });
    const log = capturingLog();
    const publisher = new EventBridgePublisher({ busName: BUS, log, client: new EventBridgeClient({}) });

    await expect(publisher.publish(event)).resolves.toBeUndefined();

    expect(log.lines).toEqual([
      [
        "error",
        "event not accepted by EventBridge",
        { eventType: "ChainBroken", ...event.detail, errorCode: "InternalFailure" },
      ],
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
