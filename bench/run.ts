/**
 * `npm run bench`: the numbers the issues ask for, printed as tables. Targets are printed beside
 * the numbers; nothing here asserts (speed is measured, not tested).
 */
import { startLocalStack } from "../lib/local/local-stack.js";
import { createLogger } from "../lib/log/logger.js";
import { bundleReport, formatBundleReport } from "./bundles.js";
import { RACE_SIM, type RaceResult, raceBroker, raceNaive } from "./chain-race.js";
import { CONTENDED, contendedVendTable, runContendedVend } from "./contended-vend.js";
import { measureDynamoCosts } from "./dynamo-costs.js";
import { raceHeal } from "./heal-race.js";
import { raceMeOutage } from "./me-outage.js";
import { outagePacingTable } from "./outage-pacing.js";
import { RATE_BENCH_NOTES, rateBenchTables, runRateBench } from "./rate-budget.js";
import { percentile, table } from "./stats.js";
import { AUTHORIZATION_SKIPPED, measureVendAuthorization } from "./vend-authorization.js";

const GENERATIONS = 10;
const CONSUMER_COUNTS = [1, 10, 100];
const say = (line = "") => process.stdout.write(`${line}\n`);

function perVend(result: RaceResult, ...kinds: string[]): number {
  const total = kinds.reduce((sum, kind) => sum + (result.dynamo[kind] ?? 0), 0);
  return result.vends === 0 ? Number.NaN : total / result.vends;
}

say(`exact-token-broker benchmark (${new Date().toISOString()}, Node ${process.version})`);
say();
say(`1. Naive copies versus the broker: N consumers over ${GENERATIONS} generations, one simulator`);
say(
  `   (tokens live ${RACE_SIM.accessTtlSeconds} s, refreshable after ${RACE_SIM.refreshAfterSeconds} s; each consumer vends at expiry, then 4 times more)`,
);
const stack = await startLocalStack({
  sim: RACE_SIM,
  env: { REFRESH_MARGIN_MS: "100" },
  log: createLogger({ serviceName: "bench", level: "ERROR" }),
});
const results: RaceResult[] = [];
try {
  for (const consumers of CONSUMER_COUNTS) {
    for (const race of [raceNaive, raceBroker]) {
      process.stderr.write(`   running ${race === raceNaive ? "naive" : "broker"} with N=${consumers} …\n`);
      results.push(await race(stack, consumers, GENERATIONS));
    }
  }
} finally {
  await stack.close();
}
say();
say(
  table(
    [
      "mode",
      "N",
      "generations",
      "token calls",
      "old-token errors",
      "chains lost",
      "vends",
      "p50 ms",
      "p95 ms",
      "p99 ms",
      "DDB reads/vend",
      "DDB writes/vend",
    ],
    results.map((r) => [
      r.mode,
      r.consumers,
      r.generations,
      r.tokenCalls,
      r.oldTokenErrors,
      r.chainsLost,
      r.vends,
      percentile(r.latenciesMs, 50),
      percentile(r.latenciesMs, 95),
      percentile(r.latenciesMs, 99),
      r.mode === "broker" ? perVend(r, "GetItem", "Query") : Number.NaN,
      r.mode === "broker" ? perVend(r, "UpdateItem", "PutItem") : Number.NaN,
    ]),
  ),
);
say("   targets (broker): token calls = generations, 0 old-token errors, 0 chains lost");
say(
  '   naive: "chains lost" counts copies left holding a rotated-away refresh token (a person must log in again)',
);

say();
say("2. DynamoDB requests per operation (Exact's real lifetimes, fake clock)");
const costs = await measureDynamoCosts();
say();
say(
  table(
    ["operation", "GetItem", "UpdateItem", "PutItem", "Query", "total"],
    costs.map(({ operation, counts }) => [
      operation,
      counts.GetItem ?? 0,
      counts.UpdateItem ?? 0,
      counts.PutItem ?? 0,
      counts.Query ?? 0,
      Object.values(counts).reduce((a, b) => a + b, 0),
    ]),
  ),
);
say(
  "   targets: cached vend 0; uncached vend 1 read (+ at most 1 write per generation); refresh at most 2 writes + 1 read,\n" +
    "   plus 1 history write per generation (issue 10); a chain start persists before its identity check: acquire,\n" +
    "   store (VERIFYING), verified, plus the user's guard and its history write",
);

say();
say("3. Self-healing: chains killed by rotate-then-drop while consumers vend (real clock, 2 s tokens)");
const healStack = await startLocalStack({
  sim: RACE_SIM,
  env: { REFRESH_MARGIN_MS: "100" },
  log: createLogger({ serviceName: "bench", level: "ERROR" }),
});
try {
  const heal = await raceHeal(healStack, 5, 10);
  say();
  say(
    table(
      [
        "broken chains",
        "consumers per chain",
        "healed",
        "logins per chain (min/max)",
        "heal time p50 ms",
        "heal time max ms",
        "refusals while healing",
      ],
      [
        [
          heal.chains,
          heal.consumersPerChain,
          heal.healedChains,
          `${Math.min(...heal.loginsPerChain)}/${Math.max(...heal.loginsPerChain)}`,
          percentile(heal.healMs, 50),
          Math.max(...heal.healMs),
          Object.entries(heal.refusals)
            .map(([name, n]) => `${name} ${n}`)
            .join(", ") || "none",
        ],
      ],
    ),
  );
  say("   target: exactly 1 login per broken chain; refusals are retryable answers (never ReauthRequired)");
} finally {
  await healStack.close();
}

say();
say("4. A heal whose identity check cannot be made: /current/Me answers 503 for an hour (fake clock)");
const outage = await raceMeOutage(60);
say();
say(
  table(
    [
      "outage min",
      "logins",
      "chains started",
      "identity checks",
      "min with live chain stored",
      "status meanwhile",
      "served after Me is back (s)",
      "logins after",
    ],
    [
      [
        outage.outageMinutes,
        outage.logins,
        outage.chainsStarted,
        outage.identityChecks,
        outage.minutesLiveChainStored,
        outage.statusDuringOutage,
        outage.servedAfterSeconds,
        outage.loginsAfter,
      ],
    ],
  ),
);
say(
  "   targets: 1 login and 1 chain start for the whole outage (before persist-first: about 28 an hour), the live chain",
);
say(
  "   stored every minute, identity checks within their budget (8 an hour), served at once when Me is back",
);

say();
say("5. Lambda bundles (built as the stack builds them): size and import time in a fresh Node process");
say(formatBundleReport(await bundleReport()));

say();
say(
  "6. Outage pacing: Exact's token endpoint down for an app's hot chains (fake clock, dynalite + simulator)",
);
say();
say(await outagePacingTable());

say();
say(
  "7. Per-connection authorization: what token-vend adds to a vend before its own work (moto_server STS, dynalite)",
);
const authorization = await measureVendAuthorization();
say();
if (!authorization) say(AUTHORIZATION_SKIPPED);
else {
  say(
    table(
      ["case", "p50 ms", "p95 ms", "STS calls/vend", "DDB reads/vend"],
      authorization.map((c) => [c.name, c.p50Ms, c.p95Ms, c.stsCallsPerVend, c.dynamoReadsPerVend]),
    ),
  );
  say(
    "   the client re-signs every 5 minutes and token-vend remembers a grant for a minute, so a warm vend adds no I/O;\n" +
      "   STS here is moto on loopback: in AWS a cold check adds one in-region STS round trip (tens of ms)",
  );
}

say();
say(
  "8. Shared rate budget: 20 consumers in 4 processes call one division as fast as they can for 3 simulated minutes\n" +
    "   (child processes, dynalite and the simulator over HTTP; sim time runs 6× real time)",
);
say();
say(rateBenchTables(await runRateBench()));
say(RATE_BENCH_NOTES);

say();
say(
  `9. Contended vend: ${CONTENDED.processes * CONTENDED.callersPerProcess} callers in ${CONTENDED.processes} separate processes vend at the window\n` +
    "   (each caller its own broker, as a Lambda container; real clock, dynalite and the simulator over HTTP)",
);
say();
say(contendedVendTable(await runContendedVend()));
