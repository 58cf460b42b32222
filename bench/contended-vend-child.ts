/**
 * One process of the contended-vend bench (bench/contended-vend.ts): CALLERS callers, each its
 * own broker (a Lambda container: its own cache, no coalescing with the others), vend one
 * connection at the moments the parent sends, one per stdin line (epoch ms, real clock; the line
 * "end" ends the process). After each round it prints one JSON line on stdout (RoundResult):
 * each vend's latency, and the duration of each token call this process made. Never a token.
 *
 * Argv: connectionId callers minValiditySeconds. Environment: the local stack's broker environment.
 */
import { createInterface } from "node:readline";
import { createBroker } from "../lib/broker.js";
import { BrokerError } from "../lib/errors.js";
import type { TokenOutcome } from "../lib/exact/classify-token-response.js";
import { type ClientCredentials, ExactOAuthClient } from "../lib/exact/oauth-client.js";
import { countingDynamo } from "../lib/local/counting-dynamo.js";
import { createLogger } from "../lib/log/logger.js";
import { READY_MARKER, type RoundResult } from "./contended-vend-protocol.js";

/** Times its refresh calls: the token call's own round trip, the yardstick of the bench. */
class TimedOAuthClient extends ExactOAuthClient {
  readonly callsMs: number[] = [];

  override async refresh(
    baseUrl: string,
    creds: ClientCredentials,
    refreshToken: string,
    timeoutMs: number,
  ): Promise<TokenOutcome> {
    const start = performance.now();
    try {
      return await super.refresh(baseUrl, creds, refreshToken, timeoutMs);
    } finally {
      this.callsMs.push(performance.now() - start);
    }
  }
}

const [connectionId = "", callers = "1", minValidity = "0"] = process.argv.slice(2);
const log = createLogger({ serviceName: "bench", level: "ERROR" });
const oauth = new TimedOAuthClient();
// One DynamoDB client per caller (a container's own), all counted.
const counted = Array.from({ length: Number(callers) }, () =>
  countingDynamo(process.env.AWS_ENDPOINT_URL_DYNAMODB ?? ""),
);
const brokers = counted.map(({ client }) =>
  createBroker(process.env, { log, oauth, dynamo: client, vendOptions: { coalesce: false } }),
);
const dynamoRequests = (): number =>
  counted.reduce((sum, { counts }) => sum + Object.values(counts).reduce((a, b) => a + b, 0), 0);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

process.stderr.write(`${READY_MARKER}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "end") break;
  await sleep(Number(line) - Date.now());
  oauth.callsMs.length = 0;
  const requestsBefore = dynamoRequests();
  const latenciesMs: number[] = [];
  const generations: number[] = [];
  const errors: string[] = [];
  await Promise.all(
    brokers.map(async (broker) => {
      const start = performance.now();
      try {
        const answer = await broker.vend.vend(connectionId, Number(minValidity));
        generations.push(answer.generation);
      } catch (error) {
        errors.push(error instanceof BrokerError ? error.name : "Error");
      } finally {
        latenciesMs.push(performance.now() - start);
      }
    }),
  );
  const result: RoundResult = {
    latenciesMs,
    tokenCallsMs: [...oauth.callsMs],
    generations,
    errors,
    dynamoRequests: dynamoRequests() - requestsBefore,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
// The brokers' HTTP agents keep sockets open: the rounds are over, so is the process.
process.exit(0);
