import type { Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBroker } from "../../lib/broker.js";
import { DEADLINE_MARGIN_MS } from "../../lib/handlers/deadline.js";
import { createRefreshHandler } from "../../lib/handlers/refresh-handler.js";
import { createTokenVendHandler } from "../../lib/handlers/token-vend-handler.js";
import { createLogger } from "../../lib/log/logger.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { findLeaks } from "../support/leak-guard.js";

/** The metric values in the CloudWatch embedded-metric-format lines a call writes to stdout. */
async function emittedMetrics(call: () => Promise<unknown>): Promise<Record<string, unknown>> {
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    const text = String(chunk);
    if (text.includes('"_aws"')) {
      lines.push(text);
      return true;
    }
    return write(chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    await call();
  } finally {
    process.stdout.write = write;
  }
  const metrics: Record<string, unknown> = {};
  for (const line of lines.flatMap((text) => text.split("\n")).filter((text) => text.trim())) {
    const record = JSON.parse(line) as { _aws: { CloudWatchMetrics: { Metrics: { Name: string }[] }[] } };
    for (const { Name } of record._aws.CloudWatchMetrics.flatMap((entry) => entry.Metrics)) {
      metrics[Name] = (record as unknown as Record<string, unknown>)[Name];
    }
  }
  return metrics;
}

const context = {
  awsRequestId: "req-1",
  functionName: "token-vend",
  getRemainingTimeInMillis: () => 30_000,
} as unknown as Context;

describe("token-vend handler", () => {
  let fx: Fixture;
  let handler: ReturnType<typeof createTokenVendHandler>;
  beforeAll(async () => {
    fx = await startFixture();
    const logger = createLogger({ serviceName: "token-vend" });
    handler = createTokenVendHandler(fx.broker({ log: logger }), logger);
  });
  afterAll(() => fx.close());

  it("answers the documented shape", async () => {
    const answer = await handler({ connectionId: fx.conn.connectionId }, context);
    expect(answer).toEqual({
      accessToken: expect.stringMatching(/^simAT!/),
      tokenType: "Bearer",
      expiresAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      expiresInSeconds: expect.any(Number),
      generation: 1,
      baseUrl: fx.stack.sim.url,
      division: expect.any(Number),
      clientId: fx.conn.clientId,
    });
    expect(Number.isInteger(answer.expiresInSeconds)).toBe(true);
  });

  it.each([
    ["no connectionId", {}],
    ["a bad connectionId", { connectionId: "../etc" }],
    ["a too long connectionId", { connectionId: "a".repeat(65) }],
    ["minValiditySeconds above the refresh window", { connectionId: "x", minValiditySeconds: 31 }],
    ["a negative minValiditySeconds", { connectionId: "x", minValiditySeconds: -1 }],
    ["a fractional minValiditySeconds", { connectionId: "x", minValiditySeconds: 1.5 }],
    ["an unknown field", { connectionId: "x", refreshToken: "give-me" }],
    ["a rejectedGeneration of 0", { connectionId: "x", rejectedGeneration: 0 }],
    ["a negative rejectedGeneration", { connectionId: "x", rejectedGeneration: -1 }],
    ["a fractional rejectedGeneration", { connectionId: "x", rejectedGeneration: 1.5 }],
    ["a rejectedGeneration that is a string", { connectionId: "x", rejectedGeneration: "1" }],
    ["not an object", "conn-1"],
    ["a callerIdentity that is not an object", { connectionId: "x", callerIdentity: "signed" }],
    [
      "a callerIdentity header that is not a string",
      { connectionId: "x", callerIdentity: { headers: { a: 1 }, body: "" } },
    ],
    [
      "a callerIdentity with an unknown field",
      { connectionId: "x", callerIdentity: { headers: {}, body: "", url: "u" } },
    ],
    [
      "a callerIdentity with too many headers",
      {
        connectionId: "x",
        callerIdentity: {
          headers: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`h${i}`, "v"])),
          body: "",
        },
      },
    ],
  ])("answers ValidationError for %s", async (_name, event) => {
    const error = await handler(event as never, context).catch((e: unknown) => e);
    expect(error).toMatchObject({
      name: "ValidationError",
      message: expect.stringContaining("invalid event"),
    });
  });

  it("answers ValidationError, after the caller is authorized, for a rejectedGeneration above the current one", async () => {
    const error = await handler({ connectionId: fx.conn.connectionId, rejectedGeneration: 2 }, context).catch(
      (e: unknown) => e,
    );

    expect(error).toMatchObject({
      name: "ValidationError",
      message: expect.stringContaining("rejectedGeneration 2 is above its current generation 1"),
    });
  });

  it("takes a rejectedGeneration and answers a token of a generation at least that one", async () => {
    const answer = await handler({ connectionId: fx.conn.connectionId, rejectedGeneration: 1 }, context);

    // The simulator accepts the token on /current/Me, so the broker serves it again.
    expect(answer.generation).toBe(1);
    expect(fx.chainStats().meRequests.ok).toBe(2);
  });

  it("waits, before it answers, for the heals it triggered to reach fallback-login (within its time)", async () => {
    const waits: Array<number | undefined> = [];
    const logger = createLogger({ serviceName: "token-vend" });
    const recording = createTokenVendHandler(
      fx.broker({
        log: logger,
        healTrigger: { trigger: () => undefined, handedOff: async (ms) => void waits.push(ms) },
      }),
      logger,
    );

    await recording({ connectionId: fx.conn.connectionId }, context);
    await expect(recording({ connectionId: "missing" }, context)).rejects.toThrow();

    // Once after the answer and once after the error, each with the remaining time less the margin.
    expect(waits).toEqual([30_000 - DEADLINE_MARGIN_MS, 30_000 - DEADLINE_MARGIN_MS]);
  });

  it("answers ConnectionNotFound with a stable errorType", async () => {
    await expect(handler({ connectionId: "missing" }, context)).rejects.toMatchObject({
      name: "ConnectionNotFound",
    });
  });

  it("answers InternalError, not a type outside its contract, when the broker's own clock is skewed", async () => {
    const logger = createLogger({ serviceName: "token-vend" });
    const skewed = createTokenVendHandler(
      fx.broker({ log: logger, now: () => fx.clock.now() + 21_000, sleep: fx.clock.sleep }),
      logger,
    );
    fx.clock.advance(572);

    const error = await skewed({ connectionId: fx.conn.connectionId }, context).catch((e: unknown) => e);

    expect(error).toMatchObject({
      name: "InternalError",
      message: expect.stringMatching(/retryAfterSeconds=1\)$/),
    });
  });

  describe("under stackWide, the metrics that say when perConnection is safe", () => {
    it("counts CallerUnchecked for a vend that could not be checked (no BROKER_SERVER_ID), not WouldDeny", async () => {
      const metrics = await emittedMetrics(() => handler({ connectionId: fx.conn.connectionId }, context));

      expect(metrics).toMatchObject({ CallerUnchecked: 1, Vends: 1 });
      expect(metrics).not.toHaveProperty("WouldDeny");
    });

    it("counts WouldDeny for a vend without an identity when it could check one", async () => {
      const logger = createLogger({ serviceName: "token-vend" });
      const checking = createTokenVendHandler(
        createBroker(
          { ...fx.stack.env, BROKER_SERVER_ID: "broker-a", AWS_REGION: "eu-west-1" },
          {
            log: logger,
            dynamo: fx.stack.dynamo.client,
            now: fx.clock.now,
            sleep: fx.clock.sleep,
            stsEndpoint: "http://127.0.0.1:9",
          },
        ),
        logger,
      );

      const metrics = await emittedMetrics(() => checking({ connectionId: fx.conn.connectionId }, context));

      expect(metrics).toMatchObject({ WouldDeny: 1, Vends: 1 });
      expect(metrics).not.toHaveProperty("CallerUnchecked");
    });
  });

  it("puts retryAfterSeconds in the message of a retryable error", async () => {
    fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "token", probability: 1 });
    fx.clock.advance(600);
    const error = (await handler({ connectionId: fx.conn.connectionId }, context).catch(
      (e: unknown) => e,
    )) as Error;
    fx.stack.sim.clearFaults();

    expect(error.name).toBe("ExactUnavailable");
    expect(error.message).toMatch(/\(retryAfterSeconds=\d+\)$/);
    expect(findLeaks(error.message)).toEqual([]);
  });
});

describe("refresh handler", () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await startFixture();
  });
  afterAll(() => fx.close());

  it("runs on a scheduled event and refuses anything else", async () => {
    const logger = createLogger({ serviceName: "refresh" });
    const handler = createRefreshHandler(fx.broker({ log: logger }), logger);
    const scheduled = { "detail-type": "Scheduled Event", source: "aws.events", detail: {} };

    await expect(handler(scheduled as never, context)).resolves.toMatchObject({ due: 0 });
    await expect(handler({ connectionId: "x" } as never, context)).rejects.toMatchObject({
      name: "ValidationError",
    });
  });
});

describe("leak guard", () => {
  it("spots a simulator token or a local secret in a line", () => {
    expect(findLeaks('{"message":"token simRT!abcdefghij"}')).toHaveLength(1);
    expect(findLeaks("password pw-sEcReT-x")).toHaveLength(1);
    expect(findLeaks('{"message":"[REDACTED]"}')).toEqual([]);
  });
});
