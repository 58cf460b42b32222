import type { Broker } from "../lib/broker.js";
import { ChainStatus } from "../lib/chain/chain-record.js";
import { ExactOAuthClient } from "../lib/exact/oauth-client.js";
import { countingDynamo, type RequestCounts } from "../lib/local/counting-dynamo.js";
import type { LocalStack } from "../lib/local/local-stack.js";
import { createLogger } from "../lib/log/logger.js";
import { NaiveConsumer } from "./naive-consumer.js";

/** Simulator lifetimes for the race: 2 s tokens, refreshable after 1 s (Exact: 600 s and 570 s). */
export const RACE_SIM = { accessTtlSeconds: 2, refreshAfterSeconds: 1 } as const;
const WINDOW_MS = (RACE_SIM.accessTtlSeconds - RACE_SIM.refreshAfterSeconds) * 1000;
/** Pause between rounds: the window opens 1 s after a refresh arrives (plus the broker's 100 ms margin). */
const ROUND_MS = RACE_SIM.refreshAfterSeconds * 1000 + 150;
const CACHED_VENDS_PER_ROUND = 4;

export interface RaceResult {
  readonly mode: "naive" | "broker";
  readonly consumers: number;
  readonly generations: number;
  readonly tokenCalls: number;
  readonly oldTokenErrors: number;
  readonly chainsLost: number;
  readonly latenciesMs: number[];
  readonly vends: number;
  readonly dynamo: RequestCounts;
}

const quietLog = () => createLogger({ serviceName: "bench", level: "ERROR" });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

async function timed<T>(latencies: number[], work: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await work();
  } finally {
    latencies.push(performance.now() - start);
  }
}

/** Each consumer vends at the moment its token runs low, then a few more times while it is fresh. */
async function rounds(count: number, vendAll: (cached: boolean) => Promise<void>): Promise<void> {
  for (let round = 1; round <= count; round += 1) {
    // Every refresh of the previous round has arrived by now, so each window is open ROUND_MS later.
    await sleep(ROUND_MS);
    await vendAll(false);
    for (let i = 0; i < CACHED_VENDS_PER_ROUND; i += 1) await vendAll(true);
  }
}

/** Every token request but the code exchange that seeded the chain. */
function tokenCalls(requests: Record<string, number>): number {
  return Object.entries(requests)
    .filter(([outcome]) => outcome !== "issued" && outcome !== "code_exchanged")
    .reduce((sum, [, n]) => sum + n, 0);
}

function chainStats(stack: LocalStack, clientId: string, username: string) {
  const stats = stack.sim.stats().chains[`${clientId}/${username}`];
  if (!stats) throw new Error("no chain at the simulator");
  return stats;
}

export async function raceBroker(
  stack: LocalStack,
  consumers: number,
  generations: number,
): Promise<RaceResult> {
  const conn = await stack.addConnection(`broker-${consumers}`);
  await stack.seed(conn);
  const { client, counts } = countingDynamo(stack.dynamo.endpoint);
  const log = quietLog();
  // One broker per consumer: N Lambda containers, each with its own cache.
  const brokers: Broker[] = Array.from({ length: consumers }, () => stack.broker({ dynamo: client, log }));
  const latencies: number[] = [];
  let vends = 0;
  await rounds(generations, async () => {
    await Promise.all(
      brokers.map((broker) =>
        timed(latencies, async () => {
          vends += 1;
          await broker.vend.vend(conn.connectionId, WINDOW_MS / 1000);
        }),
      ),
    );
  });
  const stats = chainStats(stack, conn.clientId, conn.username);
  const record = await stack.store().get(conn.connectionId);
  client.destroy();
  return {
    mode: "broker",
    consumers,
    generations: stats.generation - 1,
    tokenCalls: tokenCalls(stats.tokenRequests),
    oldTokenErrors: stats.tokenRequests.old_token,
    chainsLost: record?.status === ChainStatus.Active ? 0 : 1,
    latenciesMs: latencies,
    vends,
    dynamo: { ...counts },
  };
}

export async function raceNaive(
  stack: LocalStack,
  consumers: number,
  generations: number,
): Promise<RaceResult> {
  const conn = await stack.addConnection(`naive-${consumers}`);
  const creds = {
    clientId: conn.clientId,
    clientSecret: await stack.broker().deps.secrets.clientSecret(conn.secretId),
  };
  const oauth = new ExactOAuthClient();
  const code = stack.sim.authorize({
    clientId: conn.clientId,
    username: conn.username,
    redirectUri: conn.redirectUri,
  });
  const seeded = await oauth.exchangeCode(stack.sim.url, creds, code, conn.redirectUri, 8_000);
  const { accessToken, expiresInSeconds, refreshToken } = seeded.kind === "tokens" ? seeded.rotated : {};
  if (!accessToken || !expiresInSeconds || !refreshToken) throw new Error(`seeding failed: ${seeded.kind}`);
  const seed = { accessToken, expiresInSeconds, refreshToken };
  const seedAt = Date.now();
  // Every node starts from the same seeded chain, as when one token is copied to several nodes.
  const nodes = Array.from(
    { length: consumers },
    () => new NaiveConsumer(oauth, stack.sim.url, creds, seed, seedAt),
  );
  const latencies: number[] = [];
  let vends = 0;
  await rounds(generations, async () => {
    await Promise.all(
      nodes.map((node) =>
        node.stranded
          ? Promise.resolve()
          : timed(latencies, async () => {
              vends += 1;
              await node.vend(WINDOW_MS);
            }),
      ),
    );
  });
  const stats = chainStats(stack, conn.clientId, conn.username);
  return {
    mode: "naive",
    consumers,
    generations: stats.generation - 1,
    tokenCalls: tokenCalls(stats.tokenRequests),
    oldTokenErrors: stats.tokenRequests.old_token,
    chainsLost: nodes.filter((n) => n.stranded).length,
    latenciesMs: latencies,
    vends,
    dynamo: {},
  };
}
