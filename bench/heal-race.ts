import type { Broker } from "../lib/broker.js";
import { BrokerError } from "../lib/errors.js";
import type { LocalStack } from "../lib/local/local-stack.js";
import { createLogger } from "../lib/log/logger.js";

export interface HealResult {
  readonly chains: number;
  readonly consumersPerChain: number;
  /** Successful logins at Exact, per broken chain. */
  readonly loginsPerChain: number[];
  readonly healedChains: number;
  /** Milliseconds from the first failed vend to the first vend of the healed generation, per chain. */
  readonly healMs: number[];
  readonly refusals: Readonly<Record<string, number>>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * Kills `chains` chains with rotate-then-drop while `consumers` containers per chain vend, and
 * counts the logins each chain took to heal (target: exactly 1).
 */
export async function raceHeal(
  stack: LocalStack,
  chains: number,
  consumers: number,
  deadlineMs = 60_000,
): Promise<HealResult> {
  const log = createLogger({ serviceName: "bench", level: "ERROR" });
  const connections = await Promise.all(
    Array.from({ length: chains }, async (_, i) => {
      const conn = await stack.addConnection(`heal-${chains}-${i}`);
      await stack.seed(conn);
      return conn;
    }),
  );
  const refusals: Record<string, number> = {};
  const healMs: number[] = [];
  const endAt = Date.now() + deadlineMs;
  await Promise.all(
    connections.map(async (conn) => {
      stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", clientId: conn.clientId, count: 1 });
      const brokers: Broker[] = Array.from({ length: consumers }, () =>
        stack.broker({ log, vendOptions: { coalesce: false } }),
      );
      let firstFailureAt: number | undefined;
      let healedAt: number | undefined;
      await Promise.all(
        brokers.map(async (broker) => {
          for (let healed = false; !healed && Date.now() < endAt; await sleep(100)) {
            try {
              const answer = await broker.vend.vend(conn.connectionId, 1);
              healed =
                stack.sim.stats().chains[`${conn.clientId}/${conn.username}`]?.chainsStarted === 2 &&
                answer.generation >= 2;
              if (healed) healedAt ??= Date.now();
            } catch (error) {
              firstFailureAt ??= Date.now();
              const name = error instanceof BrokerError ? error.name : "InternalError";
              refusals[name] = (refusals[name] ?? 0) + 1;
            }
          }
        }),
      );
      if (firstFailureAt !== undefined && healedAt !== undefined) healMs.push(healedAt - firstFailureAt);
    }),
  );
  const stats = stack.sim.stats();
  const loginsPerChain = connections.map((conn) => stats.logins[conn.username]?.success ?? 0);
  return {
    chains,
    consumersPerChain: consumers,
    loginsPerChain,
    healedChains: connections.filter(
      (conn) => stats.chains[`${conn.clientId}/${conn.username}`]?.chainsStarted === 2,
    ).length,
    healMs,
    refusals,
  };
}
