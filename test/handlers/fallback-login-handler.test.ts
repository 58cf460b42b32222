import type { Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { createFallbackLoginHandler } from "../../lib/handlers/fallback-login-handler.js";
import { createLogger } from "../../lib/log/logger.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { forceStatus } from "../support/force-status.js";

const context = { awsRequestId: "req-1", functionName: "fallback-login" } as unknown as Context;

describe("fallback-login handler", () => {
  let fx: Fixture;
  let handler: ReturnType<typeof createFallbackLoginHandler>;
  beforeAll(async () => {
    fx = await startFixture();
    const logger = createLogger({ serviceName: "fallback-login" });
    handler = createFallbackLoginHandler(fx.broker({ log: logger }), logger);
  });
  afterAll(() => fx.close());

  it("heals a broken chain, and a duplicate delivery does nothing", async () => {
    await forceStatus(fx.stack, fx.conn.connectionId, {
      status: ChainStatus.Broken,
      statusReason: "old_token",
      atGeneration: 1,
    });

    const first = await handler({ connectionId: fx.conn.connectionId }, context);
    const duplicate = await handler({ connectionId: fx.conn.connectionId }, context);

    expect(first).toEqual({ kind: "healed", generation: 2 });
    expect(duplicate).toEqual({ kind: "skipped", why: "healthy" });
    expect(fx.stack.sim.stats().logins[fx.conn.username]?.success).toBe(1);
  });

  it.each([[{}], [{ connectionId: "bad id" }], [{ connectionId: "x", extra: 1 }]])(
    "answers ValidationError for %j",
    async (event) => {
      await expect(handler(event as never, context)).rejects.toMatchObject({ name: "ValidationError" });
    },
  );

  it("answers ConnectionNotFound for an unknown connection", async () => {
    await expect(handler({ connectionId: "nobody" }, context)).rejects.toMatchObject({
      name: "ConnectionNotFound",
    });
  });
});
