/**
 * Contended vend, measured as it runs (issue 12): 200 callers in 8 separate processes
 * (bench/contended-vend-child.ts, each caller its own broker: a Lambda container) vend one
 * connection at the moment its refresh window opens, asking for the window's whole validity, so
 * every caller needs the next generation: one of them refreshes, the others wait for it. Each
 * vend's latency is set against the token call's own round trip (the simulator adds 300 ms to
 * every token request, like Exact's). Goal: p99 ≤ round trip + 100 ms.
 *
 * Real clock: dynalite and the simulator in this process, over HTTP from the children; tokens
 * live 8 s and are refreshable after 5 s, so a round is a window. `npm run bench:contended`
 * runs it alone; `npm run bench` includes it.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { type LocalStack, startLocalStack } from "../lib/local/local-stack.js";
import { createLogger } from "../lib/log/logger.js";
import { READY_MARKER, type RoundResult } from "./contended-vend-protocol.js";
import { percentile, table } from "./stats.js";

export const CONTENDED = {
  processes: 8,
  callersPerProcess: 25,
  rounds: 6,
  /** Added by the simulator to every token request before it is processed. */
  tokenLatencyMs: 300,
  sim: { accessTtlSeconds: 8, refreshAfterSeconds: 5 },
} as const;
const WINDOW_S = CONTENDED.sim.accessTtlSeconds - CONTENDED.sim.refreshAfterSeconds;
/** How far past the window's opening the callers start: the broker's own margin (100 ms) plus a little. */
const START_AFTER_WINDOW_MS = 150;

export interface ContendedVendResult {
  readonly callers: number;
  readonly processes: number;
  readonly rounds: number;
  readonly vends: number;
  /** DynamoDB requests of all callers, per vend. */
  readonly dynamoPerVend: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly tokenCalls: number;
  readonly oldTokenErrors: number;
  readonly roundTripMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

interface Child {
  readonly send: (line: string) => void;
  readonly next: () => Promise<RoundResult>;
  readonly closed: Promise<void>;
}

function startChild(stack: LocalStack, connectionId: string, say: (line: string) => void): Promise<Child> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "bench/contended-vend-child.ts",
      connectionId,
      String(CONTENDED.callersPerProcess),
      String(WINDOW_S),
    ],
    { env: { ...process.env, ...stack.env, NODE_NO_WARNINGS: "1" }, stdio: ["pipe", "pipe", "pipe"] },
  );
  const lines: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    const take = waiting.shift();
    if (take) take(line);
    else lines.push(line);
  });
  const closed = new Promise<void>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`contended-vend child exited ${code}`)),
    );
  });
  closed.catch(() => undefined);
  return new Promise((resolve, reject) => {
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      if (stderr.includes(READY_MARKER)) {
        stderr = "";
        resolve({
          send: (line) => child.stdin.write(`${line}\n`),
          next: () =>
            new Promise<RoundResult>((done) => {
              const parse = (line: string) => done(JSON.parse(line) as RoundResult);
              const ready = lines.shift();
              if (ready !== undefined) parse(ready);
              else waiting.push(parse);
            }),
          closed,
        });
      } else if (!stderr.includes("@@")) say(stderr.trim());
    });
    child.on("close", (code) => reject(new Error(`contended-vend child exited ${code} before it was ready`)));
  });
}

/** Runs the bench; progress goes to `say` (stderr). */
export async function runContendedVend(
  say: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<ContendedVendResult> {
  const stack = await startLocalStack({
    sim: CONTENDED.sim,
    env: { REFRESH_MARGIN_MS: "100" },
    log: createLogger({ serviceName: "bench", level: "ERROR" }),
  });
  const children: Child[] = [];
  try {
    const conn = await stack.addConnection("contended");
    await stack.seed(conn);
    stack.sim.addFault({
      kind: "latency",
      latencyMs: CONTENDED.tokenLatencyMs,
      endpoint: "token",
      clientId: conn.clientId,
      probability: 1,
    });
    say(`   starting ${CONTENDED.processes} processes of ${CONTENDED.callersPerProcess} callers …`);
    for (let i = 0; i < CONTENDED.processes; i += 1)
      children.push(await startChild(stack, conn.connectionId, say));
    const latencies: number[] = [];
    const tokenCallsMs: number[] = [];
    const errors: Record<string, number> = {};
    let dynamoRequests = 0;
    for (let round = 1; round <= CONTENDED.rounds; round += 1) {
      const record = await stack.store().get(conn.connectionId);
      const windowAtMs = record?.windowOpensAtMs;
      if (windowAtMs === undefined) throw new Error("the chain has no refresh window");
      const startAt = Math.max(windowAtMs, Date.now() + 200) + START_AFTER_WINDOW_MS;
      for (const child of children) child.send(String(startAt));
      const results = await Promise.all(children.map((child) => child.next()));
      for (const result of results) {
        latencies.push(...result.latenciesMs);
        tokenCallsMs.push(...result.tokenCallsMs);
        dynamoRequests += result.dynamoRequests;
        for (const name of result.errors) errors[name] = (errors[name] ?? 0) + 1;
      }
      say(`   round ${round}/${CONTENDED.rounds}: p99 ${percentile(latencies, 99).toFixed(0)} ms so far`);
    }
    for (const child of children) child.send("end");
    await Promise.all(children.map((child) => child.closed));
    const stats = stack.sim.stats().chains[`${conn.clientId}/${conn.username}`];
    return {
      callers: CONTENDED.processes * CONTENDED.callersPerProcess,
      processes: CONTENDED.processes,
      rounds: CONTENDED.rounds,
      vends: latencies.length,
      dynamoPerVend: dynamoRequests / Math.max(1, latencies.length),
      errors,
      tokenCalls: stats?.tokenRequests.refreshed ?? 0,
      oldTokenErrors: stats?.tokenRequests.old_token ?? 0,
      roundTripMs: percentile(tokenCallsMs, 50),
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: Math.max(...latencies),
    };
  } finally {
    await stack.close();
  }
}

export function contendedVendTable(result: ContendedVendResult): string {
  return [
    table(
      [
        "callers",
        "processes",
        "windows",
        "vends",
        "DDB requests/vend",
        "token calls",
        "old-token errors",
        "errors",
        "token call ms (p50)",
        "vend p50 ms",
        "vend p99 ms",
        "p99 − token call ms",
        "max ms",
      ],
      [
        [
          result.callers,
          result.processes,
          result.rounds,
          result.vends,
          result.dynamoPerVend,
          result.tokenCalls,
          result.oldTokenErrors,
          Object.entries(result.errors)
            .map(([name, n]) => `${name} ${n}`)
            .join(", ") || "none",
          result.roundTripMs,
          result.p50Ms,
          result.p99Ms,
          result.p99Ms - result.roundTripMs,
          result.maxMs,
        ],
      ],
    ),
    `   goal: vend p99 ≤ token call + 100 ms; one token call per window, 0 old-token errors, no errors.\n` +
      `   Each caller is its own broker (no shared cache, no coalescing); the simulator adds ${CONTENDED.tokenLatencyMs} ms to each token request.\n` +
      `   Every window's ${Math.round(result.dynamoPerVend * result.callers)} DynamoDB requests go to one dynalite, which serves them one at a time\n` +
      "   in this process (a few hundred a second here): the vends wait on it, where DynamoDB serves a single item's\n" +
      "   requests in parallel (3,000 reads and 1,000 writes a second). Fewer callers here come closer to the goal.",
  ].join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.stdout.write(
    `Contended vend: ${CONTENDED.processes * CONTENDED.callersPerProcess} callers in ${CONTENDED.processes} processes vend at the window\n\n`,
  );
  process.stdout.write(`${contendedVendTable(await runContendedVend())}\n`);
}
