import { BRANCH_KEY_CACHE_TTL_SECONDS } from "../../lib/crypto/branch-key-store.js";
import { DEFAULT_SECRET_MAX_AGE_SECONDS } from "../../lib/secrets/secrets-manager-source.js";
import { table } from "../stats.js";
import { costRows } from "./cost.js";
import {
  type BrokerFunctionName,
  type CallCounts,
  Caller,
  dynamoTotal,
  emptyCounts,
  FUNCTIONS,
} from "./instruments.js";
import { LAMBDA_MEMORY_GB, LATENCY_MS, MIN_VALIDITY_S, MONTH_MS } from "./model.js";
import type { PhaseResult, ScaleResult } from "./run-scale.js";

/** The last line's pattern (issue 12); test/bench/scale.test.ts checks it. */
export const FINAL_LINE =
  /^scale: connections=\d+ hot=\d+ refreshed_in_window=\d+(\.\d+)?% vend_waits=\d+ max_run_s=\d+(\.\d+)? timeout_s=\d+ ddb_per_refresh=\d+(\.\d+)? lambda_gbs_per_connection_month=\d+(\.\d+)?$/;

const REFRESH_SIDE: readonly BrokerFunctionName[] = [Caller.Refresh, Caller.RefreshWorker];

function sumCounts(counts: readonly CallCounts[]): CallCounts {
  const total = emptyCounts();
  for (const c of counts) {
    for (const [command, n] of Object.entries(c.dynamo))
      total.dynamo[command] = (total.dynamo[command] ?? 0) + n;
    total.tokenCalls += c.tokenCalls;
    total.meCalls += c.meCalls;
    total.cipherCalls += c.cipherCalls;
    total.kmsRequests += c.kmsRequests;
    total.keyStoreReads += c.keyStoreReads;
    total.readUnits += c.readUnits;
    total.writeUnits += c.writeUnits;
    total.secretFetches += c.secretFetches;
    total.sqsSends += c.sqsSends;
    total.sqsMessages += c.sqsMessages;
    total.sqsReceives += c.sqsReceives;
  }
  return total;
}

const gbSeconds = (billedMs: number): number => (billedMs / 1000) * LAMBDA_MEMORY_GB;

/** The numbers the README's cost table is computed from, for one phase. */
export interface PhaseRates {
  /** Connection-months the phase stands for: connections × its length / 30 days. */
  readonly connectionMonths: number;
  readonly refreshes: number;
  readonly refreshSide: CallCounts;
  readonly vendSide: CallCounts;
  readonly lambdaGbs: Readonly<Record<BrokerFunctionName, number>>;
  readonly invocations: Readonly<Record<BrokerFunctionName, number>>;
}

export function phaseRates(phase: PhaseResult, connections: number, refreshes: number): PhaseRates {
  const lambdaGbs = {} as Record<BrokerFunctionName, number>;
  const invocations = {} as Record<BrokerFunctionName, number>;
  for (const fn of FUNCTIONS) {
    lambdaGbs[fn] = gbSeconds(phase.lambda[fn].billedMs);
    invocations[fn] = phase.lambda[fn].invocations;
  }
  return {
    connectionMonths: (connections * (phase.endMs - phase.startMs)) / MONTH_MS,
    refreshes,
    refreshSide: sumCounts(REFRESH_SIDE.map((fn) => phase.counts[fn])),
    vendSide: phase.counts[Caller.TokenVend],
    lambdaGbs,
    invocations,
  };
}

/** The function whose longest run came closest to its timeout. */
export function tightestFunction(result: ScaleResult): {
  fn: BrokerFunctionName;
  maxRunS: number;
  timeoutS: number;
} {
  let best: BrokerFunctionName = Caller.RefreshWorker;
  for (const fn of FUNCTIONS) {
    if (result.maxRunMs[fn] / result.timeoutsMs[fn] > result.maxRunMs[best] / result.timeoutsMs[best])
      best = fn;
  }
  return { fn: best, maxRunS: result.maxRunMs[best] / 1000, timeoutS: result.timeoutsMs[best] / 1000 };
}

export function hotRefreshes(result: ScaleResult): number {
  return (result.hot.workerOutcomes.refreshed ?? 0) + (result.hot.workerOutcomes.keepalive ?? 0);
}

/** The final line's numbers. */
export function finalLine(result: ScaleResult): string {
  const hot = phaseRates(result.hot, result.options.connections, hotRefreshes(result));
  const ddbPerRefresh = hot.refreshes > 0 ? dynamoTotal(hot.refreshSide) / hot.refreshes : 0;
  const gbs = (hot.lambdaGbs[Caller.Refresh] + hot.lambdaGbs[Caller.RefreshWorker]) / hot.connectionMonths;
  const inWindow = result.hotGenerations > 0 ? (100 * result.refreshedInTime) / result.hotGenerations : 0;
  const tight = tightestFunction(result);
  return [
    "scale:",
    `connections=${result.options.connections}`,
    `hot=${result.hotChains}`,
    `refreshed_in_window=${inWindow.toFixed(2)}%`,
    `vend_waits=${result.vends.waits}`,
    `max_run_s=${tight.maxRunS.toFixed(2)}`,
    `timeout_s=${Math.round(tight.timeoutS)}`,
    `ddb_per_refresh=${ddbPerRefresh.toFixed(2)}`,
    `lambda_gbs_per_connection_month=${gbs.toFixed(3)}`,
  ].join(" ");
}

const fmt = (n: number, digits = 2): string => (Number.isInteger(n) ? String(n) : n.toFixed(digits));

function countRows(
  label: string,
  rates: PhaseRates,
  side: CallCounts,
  per: number,
  perLabel: string,
): string[][] {
  const perMonth = (n: number) => fmt(n / rates.connectionMonths, 2);
  const perUnit = (n: number) => (per > 0 ? fmt(n / per, 2) : "-");
  const rows: string[][] = [];
  const commands = Object.entries(side.dynamo).sort(([a], [b]) => a.localeCompare(b));
  for (const [command, n] of commands) {
    rows.push([`${label} DynamoDB ${command}`, String(n), perUnit(n), perMonth(n)]);
  }
  const total = dynamoTotal(side);
  rows.push([`${label} DynamoDB, all`, String(total), perUnit(total), perMonth(total)]);
  for (const [name, n] of [
    ["token calls", side.tokenCalls],
    ["/current/Me calls", side.meCalls],
    ["cipher calls", side.cipherCalls],
    ["DynamoDB write units (item size, due index)", side.writeUnits],
    ["DynamoDB read units", side.readUnits],
    ["KMS requests (branch-key loads)", side.kmsRequests],
    ["key store reads (branch-key loads)", side.keyStoreReads],
    ["secret reads (GetSecretValue)", side.secretFetches],
    ["SQS SendMessageBatch", side.sqsSends],
    ["SQS messages", side.sqsMessages],
    ["SQS worker batches (receive + delete)", side.sqsReceives],
  ] as const) {
    rows.push([`${label} ${name}`, String(n), perUnit(n), perMonth(n)]);
  }
  return rows.map((row) => (perLabel ? row : row));
}

/** The bench's report (stdout), its final line last. */
export function report(result: ScaleResult): string {
  const { options } = result;
  const hot = phaseRates(result.hot, options.connections, hotRefreshes(result));
  const idleKeepalives = result.keepalives;
  const idle = phaseRates(result.idle, options.connections, idleKeepalives);
  const lines: string[] = [];
  const minutes = (ms: number) => fmt(ms / 60_000, 1);
  lines.push(
    `scale bench: ${options.connections} connections of one app, each its own Exact user; ${options.hotMinutes} hot minutes, ${options.idleDays} idle days`,
    `  modelled latencies (virtual time): DynamoDB ${LATENCY_MS.dynamo} ms per request, Exact token call ${LATENCY_MS.token} ms, /current/Me ${LATENCY_MS.me} ms,`,
    `  KMS ${LATENCY_MS.kms} ms per call, Secrets Manager ${LATENCY_MS.secrets} ms per read (cached ${DEFAULT_SECRET_MAX_AGE_SECONDS} s per container), a branch-key load ${LATENCY_MS.kms + LATENCY_MS.dynamo} ms (cached ${BRANCH_KEY_CACHE_TTL_SECONDS} s per container), SQS send ${LATENCY_MS.sqsSend} ms, SQS poll ${LATENCY_MS.sqsReceive} ms`,
    `  Lambda: refresh every minute (timeout ${result.timeoutsMs.refresh / 1000} s), refresh-worker by an SQS event source of batch size ${options.batchSize}, batching window ${options.batchingWindowSeconds} s over ${options.pollers} pollers and maximum concurrency ${options.maxConcurrency} (timeout ${result.timeoutsMs["refresh-worker"] / 1000} s), token-vend (timeout ${result.timeoutsMs["token-vend"] / 1000} s); ${LAMBDA_MEMORY_GB * 1024} MB, warm containers; timeouts from lib/infra/function-settings.ts`,
    `  vends: minValiditySeconds ${MIN_VALIDITY_S}; one when seeded, one per generation at a random moment before its window, and for ${fmt(options.burstShare * 100, 1)}% of chains per generation a burst of ${options.burstVends} from 35 s to 5 s before the token expires`,
    `  seed: 1 connection the normal way (connection add + onboarding.seed), ${result.seed.fast} the fast way (code exchange over HTTP, the broker's cipher, the same item; no /current/Me, lease writes or history item), spread over 570 s`,
    "",
  );
  const rows: string[][] = [
    [
      "hot phase (simulated minutes, after every chain was seeded)",
      minutes(result.hot.endMs - result.hot.startMs),
      "",
      "",
    ],
    ["hot chains (vended)", String(result.hotChains), "", ""],
    ["hot generations (window opened while vended)", String(result.hotGenerations), "", ""],
    ["  refreshed before they expired", String(result.refreshedInTime), "", ""],
    ["  of them by a vend's own token call", String(result.refreshedByVend), "", ""],
    [
      "  window to next token, max / p99 (s)",
      `${fmt(result.windowToArrivalMaxMs / 1000)} / ${fmt(result.windowToArrivalP99Ms / 1000)}`,
      "",
      "",
    ],
    ["refreshes by the worker (hot phase)", String(hot.refreshes), "", ""],
    [
      "vends (whole run: first / sampled / burst)",
      `${result.vends.vends} (${result.vends.byKind.first} / ${result.vends.byKind.sampled} / ${result.vends.byKind.burst})`,
      "",
      "",
    ],
    [
      "vend waits (made a token call / slept / no token)",
      `${result.vends.waits} (${result.vends.madeTokenCall} / ${result.vends.slept} / ${result.vends.failed})`,
      "",
      "",
    ],
    [
      "dispatch (hot): due / dispatched / claimed elsewhere / deferred",
      `${result.hot.dispatch.due} / ${result.hot.dispatch.dispatched} / ${result.hot.dispatch.claimedElsewhere} / ${result.hot.dispatch.deferred}`,
      "",
      "",
    ],
    [
      "queue (hot): most waiting at once / latest delivery after due (s)",
      `${result.hot.queue.maxBacklog} / ${fmt(result.hot.queue.maxLateMs / 1000)}`,
      "",
      "",
    ],
    [
      "queue (hot): worker batches / messages a batch",
      `${result.hot.queue.batches} / ${result.hot.queue.batches > 0 ? fmt(result.hot.queue.delivered / result.hot.queue.batches, 2) : "-"}`,
      "",
      "",
    ],
    [
      "worker outcomes (hot)",
      Object.entries(result.hot.workerOutcomes)
        .map(([k, n]) => `${k} ${n}`)
        .join(", "),
      "",
      "",
    ],
  ];
  for (const fn of FUNCTIONS) {
    rows.push([
      `${fn}: invocations (hot) / max run s (whole run) / timeout s / most at once`,
      `${result.hot.lambda[fn].invocations} / ${fmt(result.maxRunMs[fn] / 1000)} / ${result.timeoutsMs[fn] / 1000} / ${result.hot.lambda[fn].maxConcurrent}`,
      "",
      "",
    ]);
  }
  lines.push(table(["hot phase", "value", "", ""], rows));
  lines.push("");
  lines.push(
    table(
      ["hot phase counts (refresh + refresh-worker)", "count", "per refresh", "per connection-month"],
      [
        ...countRows("refresh side", hot, hot.refreshSide, hot.refreshes, "refresh"),
        [
          "refresh side Lambda invocations",
          String(hot.invocations.refresh + hot.invocations["refresh-worker"]),
          fmt((hot.invocations.refresh + hot.invocations["refresh-worker"]) / Math.max(1, hot.refreshes)),
          fmt((hot.invocations.refresh + hot.invocations["refresh-worker"]) / hot.connectionMonths),
        ],
        [
          "refresh side Lambda GB-s",
          fmt(hot.lambdaGbs.refresh + hot.lambdaGbs["refresh-worker"], 1),
          fmt((hot.lambdaGbs.refresh + hot.lambdaGbs["refresh-worker"]) / Math.max(1, hot.refreshes), 4),
          fmt((hot.lambdaGbs.refresh + hot.lambdaGbs["refresh-worker"]) / hot.connectionMonths, 3),
        ],
      ],
    ),
  );
  lines.push("");
  const vends = result.hot.lambda["token-vend"].invocations;
  lines.push(
    table(
      ["hot phase counts (token-vend, sampled vends)", "count", "per vend", "per connection-month"],
      [
        ...countRows("token-vend", hot, hot.vendSide, vends, "vend"),
        ["token-vend invocations", String(vends), "1", fmt(vends / hot.connectionMonths)],
        [
          "token-vend Lambda GB-s",
          fmt(hot.lambdaGbs["token-vend"], 1),
          fmt(hot.lambdaGbs["token-vend"] / Math.max(1, vends), 4),
          fmt(hot.lambdaGbs["token-vend"] / hot.connectionMonths, 3),
        ],
      ],
    ),
  );
  lines.push(
    "  per connection-month: the phase's count / (connections × its length / 30 days); vends are sampled (about 6 an hour a chain), so token-vend's rates scale with a real consumer's vends.",
  );
  lines.push("");
  lines.push(
    table(["per-request cost per hot connection-month", "refresh side", "token-vend", "all"], costRows(hot)),
  );
  lines.push(
    "  priced from the counts above (bench/scale/cost.ts: us-east-1 on-demand); fixed costs (secrets at $0.40 each, the KMS key, alarms, the dashboard) are not per request.",
  );
  lines.push("");
  const idleRows: string[][] = [
    ["idle phase (simulated days)", fmt((result.idle.endMs - result.idle.startMs) / 86_400_000, 1), "", ""],
    ["keep-alives", String(result.keepalives), "", ""],
    ["refresh tokens that would have passed 30 days without one", String(result.wouldHaveExpired), "", ""],
    ["token calls answered 'refresh token expired' (whole run)", String(result.expiredAnswers), "", ""],
    [
      "chains holding Exact's live refresh token, younger than 30 days, at the end",
      `${result.liveAtEnd} of ${options.connections}`,
      "",
      "",
    ],
    ["oldest refresh token at the end (days)", fmt(result.oldestRefreshAgeAtEndDays), "", ""],
    [
      "statuses at the end",
      Object.entries(result.statusesAtEnd)
        .map(([k, n]) => `${k} ${n}`)
        .join(", "),
      "",
      "",
    ],
    [
      "worker outcomes (idle)",
      Object.entries(result.idle.workerOutcomes)
        .map(([k, n]) => `${k} ${n}`)
        .join(", "),
      "",
      "",
    ],
    [
      "refresh invocations / refresh-worker invocations (idle)",
      `${result.idle.lambda.refresh.invocations} / ${result.idle.lambda["refresh-worker"].invocations}`,
      "",
      "",
    ],
  ];
  lines.push(table(["idle phase (refresh tokens aged 0–30 days)", "value", "", ""], idleRows));
  lines.push("");
  lines.push(
    table(
      ["idle phase counts (refresh + refresh-worker)", "count", "per keep-alive", "per connection-month"],
      [
        ...countRows("idle", idle, idle.refreshSide, idleKeepalives, "keep-alive"),
        [
          "idle Lambda GB-s",
          fmt(idle.lambdaGbs.refresh + idle.lambdaGbs["refresh-worker"], 1),
          fmt((idle.lambdaGbs.refresh + idle.lambdaGbs["refresh-worker"]) / Math.max(1, idleKeepalives), 4),
          fmt((idle.lambdaGbs.refresh + idle.lambdaGbs["refresh-worker"]) / idle.connectionMonths, 3),
        ],
      ],
    ),
  );
  lines.push(
    "  idle per connection-month over this run: the ages start spread over 0–30 days, so the first days hold the backlog of tokens past the 25-day keep-alive date; in a steady state a chain needs one keep-alive per 25 days.",
  );
  const extras = [
    ...Object.entries(result.tokenRefusals).map(([k, n]) => `token answers without tokens: ${k} ${n}`),
    ...Object.entries(result.events).map(([k, n]) => `event ${k}: ${n}`),
    ...(result.heals > 0 ? [`heals triggered: ${result.heals}`] : []),
    ...Object.entries(result.warnings).map(([k, n]) => `${k} (${n})`),
    ...(result.overruns > 0 ? [`Lambda runs past their timeout: ${result.overruns}`] : []),
    ...result.crashes.slice(0, 20).map((c) => `CRASH ${c}`),
  ];
  if (extras.length > 0) lines.push("", "notes:", ...extras.map((e) => `  ${e}`));
  const tight = tightestFunction(result);
  lines.push(
    "",
    `targets: refreshed_in_window ≥ 99.9 %, vend_waits 0, max_run_s < timeout_s (${tight.fn}, the function whose longest run came closest to its timeout), connections ≥ 10000.`,
    `ddb_per_refresh: DynamoDB requests of refresh and refresh-worker per hot refresh; lambda_gbs_per_connection_month: their GB-s (${LAMBDA_MEMORY_GB * 1024} MB) per hot connection-month.`,
    `wall: seed ${fmt(result.seed.wallMs / 1000, 0)} s, hot ${fmt(result.hot.wallMs / 1000, 0)} s, idle ${fmt(result.idle.wallMs / 1000, 0)} s, total ${fmt(result.wallMs / 1000, 0)} s`,
    finalLine(result),
  );
  return lines.join("\n");
}
