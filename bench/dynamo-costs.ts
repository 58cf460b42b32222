import { countingDynamo, type RequestCounts, resetCounts } from "../lib/local/counting-dynamo.js";
import { startLocalStack } from "../lib/local/local-stack.js";
import { createLogger } from "../lib/log/logger.js";

export interface OperationCost {
  readonly operation: string;
  readonly counts: RequestCounts;
}

/**
 * DynamoDB requests per broker operation, measured on a fake clock so each operation is exactly
 * the case it names (Exact's real lifetimes: 600 s tokens, a 30 s window).
 */
export async function measureDynamoCosts(): Promise<OperationCost[]> {
  let offsetMs = 0;
  const now = () => Date.now() + offsetMs;
  const sleep = async (ms: number) => {
    offsetMs += Math.max(0, ms);
  };
  const log = createLogger({ serviceName: "bench", level: "ERROR" });
  // DynamoDB's Date header follows the same clock: leases check this process's clock against it.
  const stack = await startLocalStack({ sim: { now }, dynamoNow: now, log });
  try {
    const { client, counts } = countingDynamo(stack.dynamo.endpoint);
    const container = () => stack.broker({ dynamo: client, now, sleep, log });
    const costs: OperationCost[] = [];
    const measure = async (operation: string, work: () => Promise<unknown>) => {
      resetCounts(counts);
      await work();
      costs.push({ operation, counts: { ...counts } });
    };
    const conn = await stack.addConnection("costs");
    const code = () =>
      stack.sim.authorize({
        clientId: conn.clientId,
        username: conn.username,
        redirectUri: conn.redirectUri,
      });
    await measure("chain start (seed: exchange, stored, verified)", () =>
      container().onboarding.seed(conn.connectionId, code()),
    );

    const warm = container();
    await measure("uncached vend, first of its generation", () => warm.vend.vend(conn.connectionId, 30));
    await measure("cached vend (warm container)", () => warm.vend.vend(conn.connectionId, 30));
    await measure("uncached vend, generation already hot", () =>
      container().vend.vend(conn.connectionId, 30),
    );
    offsetMs += 572_000;
    await measure("vend that refreshes the chain", () => container().vend.vend(conn.connectionId, 30));
    offsetMs += 545_000;
    await measure("scheduled refresh of one hot chain", () => container().refresh.run());
    client.destroy();
    return costs;
  } finally {
    await stack.close();
  }
}
