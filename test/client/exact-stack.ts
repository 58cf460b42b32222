import type { BrokerOverrides } from "../../lib/broker.js";
import { TokenClient, type TokenClientOptions } from "../../lib/client/index.js";
import { createTokenVendHandler } from "../../lib/handlers/token-vend-handler.js";
import { createLogger } from "../../lib/log/logger.js";
import { type InvokeEndpoint, startInvokeEndpoint } from "../auth/lambda-invoke-endpoint.js";
import { type Fixture, startFixture } from "../support/fixture.js";

/**
 * A consumer's whole path, in one process: the client library invokes token-vend (the real
 * handler, one warm container) over Lambda's Invoke API on 127.0.0.1, token-vend vends from
 * dynalite and the simulator, and `exactFetch` calls the simulator's REST API over HTTP. The
 * broker, the simulator and (unless told otherwise) the consumer share the fixture's fake clock.
 */
export interface ExactStack {
  readonly fixture: Fixture;
  readonly tokenVend: InvokeEndpoint;
  /** Every event token-vend received, in order (no token is in one). */
  readonly events: Record<string, unknown>[];
  /** A new consumer container (empty cache) on the fixture's clock shifted by `skewMs`. */
  consumer(options?: Omit<TokenClientOptions, "lambda" | "functionName">, skewMs?: number): TokenClient;
  /** The simulator's REST API counts for the fixture's connection in its division. */
  apiCounts(division: number): Record<string, number>;
  close(): Promise<void>;
}

/** `brokerOverrides`: token-vend's broker's (its events publisher, its heal trigger). */
export async function startExactStack(
  apiCallsPerMinute: number,
  brokerOverrides: BrokerOverrides = {},
): Promise<ExactStack> {
  const fixture = await startFixture({ sim: { apiCallsPerMinute } });
  const logger = createLogger({ serviceName: "token-vend" });
  const handler = createTokenVendHandler(fixture.broker({ log: logger, ...brokerOverrides }), logger);
  const events: Record<string, unknown>[] = [];
  const tokenVend = await startInvokeEndpoint(async (event: Record<string, unknown>, context: never) => {
    events.push(event);
    return handler(event as never, context);
  });
  return {
    fixture,
    tokenVend,
    events,
    consumer: (options = {}, skewMs = 0) =>
      new TokenClient({
        now: () => fixture.clock.now() + skewMs,
        ...options,
        lambda: tokenVend.lambda,
        functionName: "token-vend",
      }),
    apiCounts: (division) => ({ ...fixture.stack.sim.stats().api[`${fixture.conn.clientId}/${division}`] }),
    async close() {
      await tokenVend.close();
      await fixture.close();
    },
  };
}
