import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  ConditionalCheckFailedException,
  DescribeTableCommand,
  ListTablesCommand,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClockSkewMonitor } from "../../lib/chain/clock-skew.js";
import { ExitCode, exitCodeFor } from "../../lib/cli/exit-codes.js";
import { ClockSkewed } from "../../lib/errors.js";
import { type LocalDynamo, localDynamoClient, startDynalite } from "../../lib/local/dynalite.js";

/** A whole second of DynamoDB's clock; tests add the sub-second phase themselves. */
const SECOND_MS = Date.UTC(2026, 5, 1, 12, 0, 0);
const imf = (ms: number): string => new Date(ms).toUTCString();

function thrown(monitor: ClockSkewMonitor): unknown {
  try {
    monitor.assertWithinBound();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("ClockSkewMonitor", () => {
  describe("record and assertWithinBound", () => {
    it("passes a clock that agrees with DynamoDB's, within the header's resolution and the round trip", () => {
      const monitor = new ClockSkewMonitor({ now: Date.now });

      // DynamoDB wrote the response at SECOND_MS + 500 by both clocks; the request took 100 ms.
      monitor.record(SECOND_MS + 450, SECOND_MS + 550, imf(SECOND_MS));

      expect(monitor.offsetRangeMs()).toEqual({ lowMs: -550, highMs: 550 });
      expect(() => monitor.assertWithinBound()).not.toThrow();
    });

    it("refuses a clock 21 s ahead, saying by how much, the bound and what to do", () => {
      const monitor = new ClockSkewMonitor({ now: Date.now });

      // DynamoDB wrote at SECOND_MS + 500; our clock read 21 s more, ± 40 ms of round trip.
      monitor.record(SECOND_MS + 21_460, SECOND_MS + 21_540, imf(SECOND_MS));

      const error = thrown(monitor);
      expect(error).toBeInstanceOf(ClockSkewed);
      const { message } = error as ClockSkewed;
      expect(message).toMatch(/about 21\.0 s ahead/);
      expect(message).toMatch(/as much as 21\.5 s ahead/);
      expect(message).toMatch(/the 3\.0 s either way/);
      expect(message).toMatch(/Fix this machine's clock \(NTP/);
      expect(message).toMatch(/no lease is taken until then/);
    });

    it("refuses a clock 21 s behind, saying so", () => {
      const monitor = new ClockSkewMonitor({ now: Date.now });

      monitor.record(SECOND_MS - 20_540, SECOND_MS - 20_460, imf(SECOND_MS));

      expect(monitor.offsetRangeMs()).toEqual({ lowMs: 20_460, highMs: 21_540 });
      expect(thrown(monitor)).toBeInstanceOf(ClockSkewed);
      expect((thrown(monitor) as ClockSkewed).message).toMatch(/about 21\.0 s behind/);
    });

    it("refuses an interval that reaches past the bound although its midpoint is inside it", () => {
      const monitor = new ClockSkewMonitor({ now: Date.now });

      // Offset somewhere in [−3.4 s, −2.4 s]: the clock MAY be 3.4 s ahead.
      monitor.record(SECOND_MS + 3_400, SECOND_MS + 3_400, imf(SECOND_MS));

      const error = thrown(monitor);
      expect(error).toBeInstanceOf(ClockSkewed);
      expect((error as ClockSkewed).message).toMatch(
        /about 2\.9 s ahead, and may be as much as 3\.4 s ahead/,
      );
    });

    it("passes an interval that ends exactly at the bound: only more than the bound is refused", () => {
      const monitor = new ClockSkewMonitor({ now: Date.now });

      monitor.record(SECOND_MS + 3_000, SECOND_MS + 3_000, imf(SECOND_MS));

      expect(monitor.offsetRangeMs()).toEqual({ lowMs: -3_000, highMs: -2_000 });
      expect(() => monitor.assertWithinBound()).not.toThrow();
    });

    it("takes its bound from the options", () => {
      const lenient = new ClockSkewMonitor({ now: Date.now, boundMs: 10_000 });
      const strict = new ClockSkewMonitor({ now: Date.now });

      for (const monitor of [lenient, strict])
        monitor.record(SECOND_MS + 5_500, SECOND_MS + 5_500, imf(SECOND_MS));

      expect(() => lenient.assertWithinBound()).not.toThrow();
      expect(thrown(strict)).toBeInstanceOf(ClockSkewed);
    });

    it("passes before any measurement: callers measure first", () => {
      const monitor = new ClockSkewMonitor({ now: Date.now });

      expect(monitor.measured).toBe(false);
      expect(monitor.offsetRangeMs()).toBeUndefined();
      expect(() => monitor.assertWithinBound()).not.toThrow();
    });

    it.each([
      ["missing", undefined],
      ["empty", ""],
      ["garbage", "yesterday"],
      ["a number Date.parse would take for 2001", "1"],
      ["ISO 8601, not an IMF-fixdate", new Date(SECOND_MS - 60_000).toISOString()],
      ["a numeric zone, not an IMF-fixdate", "Mon, 01 Jun 2026 11:59:00 +0000"],
      ["an IMF-fixdate of a day that does not exist", "Mon, 32 Jun 2026 11:59:00 GMT"],
    ])("ignores a Date header that is %s, keeping the previous measurement", (_shape, header) => {
      const monitor = new ClockSkewMonitor({ now: Date.now });
      monitor.record(SECOND_MS + 450, SECOND_MS + 550, imf(SECOND_MS));
      const before = monitor.offsetRangeMs();

      monitor.record(SECOND_MS + 450, SECOND_MS + 550, header);

      expect(monitor.offsetRangeMs()).toEqual(before);
      const fresh = new ClockSkewMonitor({ now: Date.now });
      fresh.record(SECOND_MS + 450, SECOND_MS + 550, header);
      expect(fresh.measured).toBe(false);
    });

    it("judges by the latest measurement only, so a clock NTP has just fixed is trusted again", () => {
      const monitor = new ClockSkewMonitor({ now: Date.now });
      monitor.record(SECOND_MS + 21_460, SECOND_MS + 21_540, imf(SECOND_MS));
      expect(thrown(monitor)).toBeInstanceOf(ClockSkewed);

      monitor.record(SECOND_MS + 60_450, SECOND_MS + 60_550, imf(SECOND_MS + 60_000));

      expect(monitor.offsetRangeMs()).toEqual({ lowMs: -550, highMs: 550 });
      expect(() => monitor.assertWithinBound()).not.toThrow();
    });

    it("does not judge by a slow round trip alone: it says too little about the clock", () => {
      const monitor = new ClockSkewMonitor({ now: Date.now });

      monitor.record(SECOND_MS + 9_400, SECOND_MS + 13_400, imf(SECOND_MS + 12_000));

      expect(monitor.measured).toBe(false);
      expect(() => monitor.assertWithinBound()).not.toThrow();
    });

    it("keeps a well-measured clock trusted through a slow round trip (the intervals intersect)", () => {
      const monitor = new ClockSkewMonitor({ now: Date.now });
      monitor.record(SECOND_MS + 450, SECOND_MS + 550, imf(SECOND_MS));

      // A 4 s round trip alone would leave the clock possibly 3.6 s behind.
      monitor.record(SECOND_MS + 9_400, SECOND_MS + 13_400, imf(SECOND_MS + 12_000));

      expect(monitor.offsetRangeMs()).toEqual({ lowMs: -550, highMs: 550 });
      expect(() => monitor.assertWithinBound()).not.toThrow();
    });

    it("drops every measurement when its readings run backwards: the clock was stepped back mid-request", () => {
      const monitor = new ClockSkewMonitor({ now: Date.now });
      monitor.record(SECOND_MS + 450, SECOND_MS + 550, imf(SECOND_MS));

      monitor.record(SECOND_MS + 21_000, SECOND_MS + 500, imf(SECOND_MS));

      expect(monitor.measured).toBe(false);
    });
  });

  describe("attach, against dynalite", () => {
    let dynamo: LocalDynamo;
    let tableName: string;
    /** DynamoDB's clock, as dynalite's Date headers report it; each test sets it. */
    let dynamoNow: () => number = Date.now;
    beforeAll(async () => {
      dynamo = await startDynalite({ now: () => dynamoNow() });
      tableName = await dynamo.createTable();
    });
    afterAll(() => dynamo.close());

    const describeTable = (monitor: ClockSkewMonitor) =>
      dynamo.client.send(monitor.attach(new DescribeTableCommand({ TableName: tableName })));

    it("passes a clock that agrees with DynamoDB's, and leaves the command's result alone", async () => {
      dynamoNow = () => Date.now() + 400_000;
      const monitor = new ClockSkewMonitor({ now: () => dynamoNow() });

      const out = await describeTable(monitor);

      expect(out.Table?.TableName).toBe(tableName);
      const range = monitor.offsetRangeMs();
      expect(range?.lowMs).toBeLessThanOrEqual(0);
      expect(range?.highMs).toBeGreaterThanOrEqual(0);
      expect(() => monitor.assertWithinBound()).not.toThrow();
    });

    it("refuses a clock 21 s ahead of DynamoDB's", async () => {
      dynamoNow = () => Date.now() + 400_000;
      const monitor = new ClockSkewMonitor({ now: () => dynamoNow() + 21_000 });

      await describeTable(monitor);

      const range = monitor.offsetRangeMs();
      expect(range?.lowMs).toBeLessThanOrEqual(-21_000);
      expect(range?.highMs).toBeGreaterThanOrEqual(-21_000);
      expect(thrown(monitor)).toBeInstanceOf(ClockSkewed);
    });

    // DynamoDB's clock stands still, so the request takes no time and only the header's
    // resolution widens the interval: offset ∈ [−2.5 s − phase, −1.5 s − phase].
    it.each([
      ["passes", "had just begun (nothing hidden: offset within [−2.5 s, −1.5 s])", 0, false],
      ["passes", "was half over (offset within [−3.0 s, −2.0 s], at the bound)", 500, false],
      ["refuses", "was 0.6 s old (the clock may be 3.1 s ahead)", 600, true],
    ])("%s a clock 2.5 s ahead when DynamoDB's second %s", async (_verdict, _phase, phaseMs, refused) => {
      dynamoNow = () => SECOND_MS + phaseMs;
      const monitor = new ClockSkewMonitor({ now: () => dynamoNow() + 2_500 });

      await describeTable(monitor);

      expect(monitor.offsetRangeMs()).toEqual({ lowMs: -2_500 - phaseMs, highMs: -1_500 - phaseMs });
      expect(thrown(monitor) instanceof ClockSkewed).toBe(refused);
    });

    it("measures an error answer too: a lost conditional write still carries DynamoDB's Date", async () => {
      dynamoNow = () => Date.now() + 400_000;
      const monitor = new ClockSkewMonitor({ now: () => dynamoNow() + 21_000 });

      const write = dynamo.client.send(
        monitor.attach(
          new PutItemCommand({
            TableName: tableName,
            Item: { pk: { S: "CONN#missing" } },
            ConditionExpression: "attribute_exists(pk)",
          }),
        ),
      );

      await expect(write).rejects.toBeInstanceOf(ConditionalCheckFailedException);
      expect(thrown(monitor)).toBeInstanceOf(ClockSkewed);
    });

    it("sends a lost conditional write once although dynalite's clock is minutes off Date.now()", async () => {
      // The SDK would take the lead for skew of 4 minutes or more and resend every failed request.
      dynamoNow = () => Date.now() + 400_000;

      const error: unknown = await dynamo.client
        .send(
          new PutItemCommand({
            TableName: tableName,
            Item: { pk: { S: "CONN#missing" } },
            ConditionExpression: "attribute_exists(pk)",
          }),
        )
        .catch((failure: unknown) => failure);

      expect(error).toBeInstanceOf(ConditionalCheckFailedException);
      expect((error as ConditionalCheckFailedException).$metadata.attempts).toBe(1);
    });

    it("measures each monitor's own clock when two share one client", async () => {
      dynamoNow = () => Date.now() + 400_000;
      const agreeing = new ClockSkewMonitor({ now: () => dynamoNow() });
      const ahead = new ClockSkewMonitor({ now: () => dynamoNow() + 21_000 });

      await Promise.all([describeTable(agreeing), describeTable(ahead), describeTable(agreeing)]);

      expect(() => agreeing.assertWithinBound()).not.toThrow();
      expect(thrown(ahead)).toBeInstanceOf(ClockSkewed);
      expect(dynamo.client.middlewareStack.identify().join("\n")).not.toMatch(/clockSkewMonitor/);
    });
  });

  describe("attach, against a server with odd Date headers", () => {
    let server: Server;
    let dateHeader: string | undefined;
    beforeAll(async () => {
      server = createServer((_request, response) => {
        response.sendDate = false;
        if (dateHeader !== undefined) response.setHeader("date", dateHeader);
        response.setHeader("content-type", "application/x-amz-json-1.0");
        response.end('{"TableNames":["odd"]}');
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it.each([
      ["no Date header", undefined],
      ["a Date header that is no date", "not a date"],
    ])("measures nothing and leaves the result alone given %s", async (_case, header) => {
      dateHeader = header;
      const client = localDynamoClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const monitor = new ClockSkewMonitor({ now: Date.now });

      const out = await client.send(monitor.attach(new ListTablesCommand({})));
      client.destroy();

      expect(out.TableNames).toEqual(["odd"]);
      expect(monitor.measured).toBe(false);
    });
  });
});

describe("ClockSkewed", () => {
  it("makes the CLI exit with Refused (4), as a chain that needs a person does", () => {
    expect(exitCodeFor(new ClockSkewed("clock off"))).toBe(ExitCode.Refused);
  });
});
