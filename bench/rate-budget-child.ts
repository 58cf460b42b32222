/**
 * One consumer process of the rate-budget bench (bench/rate-budget.ts): N consumers sharing one
 * SharedRateBudget (one DynamoDB client to the bench's dynalite) call the simulator's REST API as
 * fast as the budget lets them, each call `acquire` → fetch → `observe` with Exact's headers.
 *
 * Start handshake (as test/support/vend-child.ts): once built, the child writes "@@rate-child-ready"
 * to stderr, then reads its start line (JSON `ChildStart`) from stdin. Its clock is the bench's:
 * sim time = `simOriginMs + (Date.now() − realOriginMs) × speed`, the simulator's too. Prints one
 * JSON line on stdout (`ChildResult`). Never prints the access token.
 */
import { pathToFileURL } from "node:url";
import { parseRateLimitHeaders } from "../lib/client/rate-limit-headers.js";
import { Throttled } from "../lib/errors.js";
import { countingDynamo, type RequestCounts } from "../lib/local/counting-dynamo.js";
import { SharedRateBudget } from "../lib/ratebudget/shared-rate-budget.js";

export interface ChildStart {
  readonly dynamoEndpoint: string;
  readonly tableName: string;
  readonly simUrl: string;
  readonly accessToken: string;
  readonly clientId: string;
  readonly division: number;
  readonly consumers: number;
  readonly simOriginMs: number;
  readonly realOriginMs: number;
  readonly speed: number;
  /** Sim time the consumers stop; no slot at or after it is taken. */
  readonly stopAtMs: number;
}

export interface ChildCall {
  /** Sim time of the answer. */
  readonly atMs: number;
  readonly status: number;
  /** The answer's `X-RateLimit-Minutely-Reset`: which of Exact's minutes it was counted in. */
  readonly minuteResetMs?: number;
}

export interface ChildResult {
  readonly calls: ChildCall[];
  readonly throttled: number;
  readonly dynamo: RequestCounts;
}

export const READY_MARKER = "@@rate-child-ready";

/** How long a consumer lets `acquire` wait: a Lambda with a minute left. */
const DEADLINE_MS = 60_000;

async function main(): Promise<void> {
  process.stderr.write(`${READY_MARKER}\n`);
  let line = "";
  for await (const chunk of process.stdin) line += String(chunk);
  const start = JSON.parse(line) as ChildStart;
  const now = () => start.simOriginMs + (Date.now() - start.realOriginMs) * start.speed;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms) / start.speed));
  const { client, counts } = countingDynamo(start.dynamoEndpoint);
  const budget = new SharedRateBudget({ tableName: start.tableName, client, now, sleep });
  const key = { clientId: start.clientId, division: start.division };
  const url = `${start.simUrl}/api/v1/${start.division}/crm/Accounts?$top=1`;
  const headers = { Authorization: `Bearer ${start.accessToken}`, Accept: "application/json" };
  const calls: ChildCall[] = [];
  let throttled = 0;

  const consumer = async () => {
    while (now() < start.stopAtMs) {
      try {
        await budget.acquire(key, Math.min(now() + DEADLINE_MS, start.stopAtMs - 1));
      } catch (error) {
        if (!(error instanceof Throttled)) throw error;
        throttled += 1;
        await sleep(Math.min((error.retryAfterSeconds ?? 1) * 1000, start.stopAtMs - now()));
        continue;
      }
      const response = await fetch(url, { headers });
      await response.arrayBuffer();
      const reset = response.headers.get("X-RateLimit-Minutely-Reset");
      calls.push({
        atMs: now(),
        status: response.status,
        ...(reset === null ? {} : { minuteResetMs: Number(reset) }),
      });
      await budget.observe(key, parseRateLimitHeaders(response.headers, response.status));
    }
  };

  await sleep(start.simOriginMs - now());
  await Promise.all(Array.from({ length: start.consumers }, consumer));
  client.destroy();
  const result: ChildResult = { calls, throttled, dynamo: { ...counts } };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
