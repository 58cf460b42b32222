import { CreateQueueCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { DueChainMessage } from "../../lib/chain/refresh-dispatch.js";
import {
  MalformedRefreshMessage,
  parseDueChainMessage,
  SqsRefreshQueue,
} from "../../lib/queue/sqs-refresh-queue.js";
import { type MotoServer, startMotoServer } from "../support/moto-server.js";
import { describeWithMoto } from "../support/tool-gate.js";

// The dispatcher's SQS adapter against moto_server's SQS over real HTTP: what it sends is what
// the worker reads back, each message held back by its own DelaySeconds.

const REGION = "eu-west-1";
const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };

const message = (connectionId: string, delaySeconds: number): DueChainMessage => ({
  connectionId,
  dueAtMs: 1_767_600_000_000,
  redispatchAtMs: 1_767_600_120_000,
  delaySeconds,
});

describeWithMoto("SqsRefreshQueue (moto_server)", () => {
  let moto: MotoServer;
  let sqs: SQSClient;

  beforeAll(async () => {
    moto = await startMotoServer();
    sqs = new SQSClient({
      region: REGION,
      endpoint: moto.endpoint,
      credentials: CREDENTIALS,
      maxAttempts: 1,
    });
  }, 60_000);
  afterAll(async () => {
    sqs?.destroy();
    await moto?.close();
  });

  async function newQueue(name: string): Promise<string> {
    const out = await sqs.send(new CreateQueueCommand({ QueueName: name }));
    if (!out.QueueUrl) throw new Error("moto created no queue");
    return out.QueueUrl;
  }

  async function receive(queueUrl: string): Promise<string[]> {
    const out = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    return (out.Messages ?? []).map((m) => m.Body ?? "");
  }

  it("sends a batch the worker reads back as the dispatcher wrote it", async () => {
    const queueUrl = await newQueue("refresh-now");
    const queue = new SqsRefreshQueue({ queueUrl, client: sqs });

    // An unclaimed chain's message: its body repeats dueAtMs as redispatchAtMs (for workers of
    // releases that required it), and reads back without a claim.
    const unclaimed = { connectionId: "gamma", dueAtMs: 1_767_600_000_000, delaySeconds: 0 };
    await queue.send([message("acme", 0), message("beta.2", 0), unclaimed]);

    const bodies = await receive(queueUrl);
    expect(JSON.parse(bodies.find((b) => b.includes("gamma")) ?? "{}").redispatchAtMs).toBe(
      unclaimed.dueAtMs,
    );
    expect(
      bodies.map(parseDueChainMessage).sort((a, b) => a.connectionId.localeCompare(b.connectionId)),
    ).toEqual([{ ...message("acme", 0) }, { ...message("beta.2", 0) }, unclaimed]);
  });

  it("holds each message back by its own DelaySeconds", async () => {
    const queueUrl = await newQueue("refresh-delayed");
    const queue = new SqsRefreshQueue({ queueUrl, client: sqs });

    await queue.send([message("now", 0), message("later", 900)]);

    expect((await receive(queueUrl)).map((body) => parseDueChainMessage(body).connectionId)).toEqual(["now"]);
  });

  it("refuses more than SQS's 10 messages a batch before sending anything", async () => {
    const queueUrl = await newQueue("refresh-eleven");
    const queue = new SqsRefreshQueue({ queueUrl, client: sqs });

    await expect(queue.send(Array.from({ length: 11 }, (_, i) => message(`c${i}`, 0)))).rejects.toThrow(
      "at most 10 messages",
    );
    expect(await receive(queueUrl)).toEqual([]);
  });

  it("returns the entries SQS refused, and queues the others", async () => {
    const queueUrl = await newQueue("refresh-refused");
    const queue = new SqsRefreshQueue({ queueUrl, client: sqs });
    // DelaySeconds past SQS's 900: that entry alone fails (its SendMessageBatch `Failed` entry).
    const refusedOne = message("too-late", 901);

    const refused = await queue.send([message("acme", 0), refusedOne]);

    expect(refused).toEqual([refusedOne]);
    expect((await receive(queueUrl)).map((body) => JSON.parse(body).connectionId)).toEqual(["acme"]);
  });
});

it.each([
  ["not JSON", "{", "not JSON"],
  ["no connection", JSON.stringify({ dueAtMs: 1, redispatchAtMs: 2 }), "no valid connectionId"],
  [
    "a bad connection ID",
    JSON.stringify({ connectionId: "../x", dueAtMs: 1, redispatchAtMs: 2 }),
    "connectionId",
  ],
  [
    "times that are not epoch ms",
    JSON.stringify({ connectionId: "a", dueAtMs: "1", redispatchAtMs: 2 }),
    "epoch ms",
  ],
])("parseDueChainMessage refuses %s", (_what, body, reason) => {
  expect(() => parseDueChainMessage(body)).toThrow(MalformedRefreshMessage);
  expect(() => parseDueChainMessage(body)).toThrow(reason);
});
