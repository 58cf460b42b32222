import { type AttributeValue, ScanCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import type { Broker, BrokerOverrides } from "../../lib/broker.js";
import { toRecord } from "../../lib/chain/chain-item.js";
import { type ChainRecord, ChainStatus } from "../../lib/chain/chain-record.js";
import type { EngineLog, HealTrigger } from "../../lib/chain/engine-deps.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { keepaliveDueAtMs } from "../../lib/chain/timing.js";
import { loadConfig } from "../../lib/config.js";
import { createTokenCipher } from "../../lib/crypto/token-cipher.js";
import { MemoryPublisher } from "../../lib/events/event-publishers.js";
import { FunctionName } from "../../lib/infra/bundling.js";
import { EngineSettings, functionTimeouts } from "../../lib/infra/function-settings.js";
import { CLIENT_SECRET_PREFIX } from "../../lib/infra/names.js";
import { startLocalStack } from "../../lib/local/local-stack.js";
import { mulberry32 } from "../../lib/sim/prng.js";
import { EventClock } from "../support/event-clock.js";
import { Consumers, type VendStats } from "./consumers.js";
import { checkSameAttributes, FastSeed, type ScaleApp, type SeedTarget } from "./fast-seed.js";
import {
  type BrokerFunctionName,
  type CallCounts,
  Caller,
  copyCounts,
  diffCounts,
  FUNCTIONS,
  Instruments,
} from "./instruments.js";
import { type InvocationStats, LambdaModel } from "./lambda-model.js";
import { SCHEDULE_EVERY_MS, type ScaleOptions } from "./model.js";
import { type QueueStats, VirtualRefreshQueue } from "./virtual-queue.js";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
/** Exact's refresh token lifetime (the simulator's default refreshTtlDays). */
const REFRESH_TTL_MS = 30 * DAY_MS;
/** Seeds are spread over this much of a token's life, so windows fall evenly over the minutes. */
const SEED_SPREAD_MS = 570_000;
/**
 * After the hot phase the schedule pauses this long: the queue drains, and every chain's last
 * vend falls more than a token's life behind, so no chain is hot when the idle phase starts.
 */
const PAUSE_MS = 11 * MINUTE_MS;

/** What one stretch of the run (the hot or the idle phase) did. */
export interface PhaseResult {
  readonly startMs: number;
  readonly endMs: number;
  readonly counts: Readonly<Record<Caller, CallCounts>>;
  readonly lambda: Readonly<Record<BrokerFunctionName, InvocationStats>>;
  readonly workerOutcomes: Readonly<Record<string, number>>;
  readonly dispatch: { due: number; dispatched: number; claimedElsewhere: number; deferred: number };
  readonly queue: QueueStats;
  readonly wallMs: number;
}

export interface ScaleResult {
  readonly options: ScaleOptions;
  readonly timeoutsMs: Readonly<Record<BrokerFunctionName, number>>;
  readonly seed: { readonly normal: number; readonly fast: number; readonly wallMs: number };
  readonly hot: PhaseResult;
  readonly idle: PhaseResult;
  /** Vends over the whole run (the first vends of the seed included). */
  readonly vends: VendStats;
  readonly maxRunMs: Readonly<Record<BrokerFunctionName, number>>;
  readonly overruns: number;
  readonly hotChains: number;
  readonly hotGenerations: number;
  readonly refreshedInTime: number;
  /** Of the hot generations' successors, how many a vend's own token call brought. */
  readonly refreshedByVend: number;
  /** From a hot generation's window to its successor's arrival (ms): max and 99th percentile. */
  readonly windowToArrivalMaxMs: number;
  readonly windowToArrivalP99Ms: number;
  readonly idleDays: number;
  readonly keepalives: number;
  /** Chains whose aged refresh token would have passed 30 days within the idle phase without a keep-alive. */
  readonly wouldHaveExpired: number;
  /** Token calls the simulator answered "refresh token expired" (the whole run). */
  readonly expiredAnswers: number;
  /** At the end: items whose refresh token is the simulator's live one and younger than 30 days. */
  readonly liveAtEnd: number;
  readonly statusesAtEnd: Readonly<Record<string, number>>;
  readonly oldestRefreshAgeAtEndDays: number;
  readonly tokenRefusals: Readonly<Record<string, number>>;
  readonly events: Readonly<Record<string, number>>;
  readonly heals: number;
  readonly warnings: Readonly<Record<string, number>>;
  readonly crashes: readonly string[];
  readonly wallMs: number;
}

/** The functions' timeouts as the stack deploys them with its default engine settings. */
function timeouts(): Record<BrokerFunctionName, number> {
  const all = functionTimeouts(EngineSettings);
  return {
    [Caller.Refresh]: all[FunctionName.Refresh].toMilliseconds(),
    [Caller.RefreshWorker]: all[FunctionName.RefreshWorker].toMilliseconds(),
    [Caller.TokenVend]: all[FunctionName.TokenVend].toMilliseconds(),
  };
}

/** Counts warnings and errors by message (never a token: the engine's messages carry identifiers only). */
function countingLog(counts: Record<string, number>): EngineLog {
  const note = (level: string) => (message: string) => {
    const key = `${level}: ${message}`;
    counts[key] = (counts[key] ?? 0) + 1;
  };
  return { info: () => undefined, warn: note("warn"), error: note("error") };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

/** The scale bench's scenario, start to end (bench/scale.ts prints it; test/bench/scale.test.ts checks it). */
export async function runScale(options: ScaleOptions): Promise<ScaleResult> {
  const wallStart = performance.now();
  const wallSince = (): string => `${((performance.now() - wallStart) / 1000).toFixed(0)} s wall`;
  // The top of an hour ahead of real time: the simulator's error limit counts per clock hour.
  const startMs = (Math.floor(Date.now() / HOUR_MS) + 2) * HOUR_MS;
  const clock = new EventClock(startMs);
  const simAt = (): string => {
    const ms = clock.now() - startMs;
    const days = Math.floor(ms / DAY_MS);
    return `sim ${days > 0 ? `${days}d ` : ""}${new Date(ms).toISOString().slice(11, 19)}`;
  };
  const say = (line: string) => {
    if (options.progress) process.stderr.write(`[scale] ${line} (${simAt()}, ${wallSince()})\n`);
  };
  const stack = await startLocalStack({
    sim: { now: clock.now, tokenStyle: options.tokenStyle },
    dynamoNow: clock.now,
    dynamoInChildProcess: options.dynamoInChildProcess,
  });
  const instruments = new Instruments(clock, stack.dynamo.endpoint);
  const crashes: string[] = [];
  const crash = (what: string, error: unknown) => {
    crashes.push(`${what}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
  };
  const flow = (what: string, body: () => Promise<unknown>) => {
    void body().catch((error: unknown) => crash(what, error));
  };
  let stopped = false;
  try {
    const config = loadConfig(stack.env);
    const timeoutsMs = timeouts();
    const warnings: Record<string, number> = {};
    const log = countingLog(warnings);
    const events = new MemoryPublisher();
    let heals = 0;
    const healTrigger: HealTrigger = {
      trigger: () => {
        heals += 1;
      },
      handedOff: async () => undefined,
    };
    const random = mulberry32(options.seed);
    const cipher = createTokenCipher(stack.env);
    const broker = (caller: Caller, extra: BrokerOverrides = {}): Broker =>
      stack.broker({
        now: clock.now,
        sleep: instruments.sleep,
        random,
        dynamo: instruments.dynamo(caller),
        log,
        events,
        healTrigger,
        oauth: instruments.oauth(caller),
        cipher: instruments.cipher(cipher, caller),
        secrets: instruments.secrets(caller),
        ...extra,
      });

    // ── The functions and the queue between them ─────────────────────────────────────────────
    const queue = new VirtualRefreshQueue(clock, instruments.counts[Caller.Refresh], {
      batchSize: options.batchSize,
      maxConcurrency: options.maxConcurrency,
      batchingWindowMs: options.batchingWindowSeconds * 1000,
      pollers: options.pollers,
    });
    const fns: Record<BrokerFunctionName, LambdaModel> = {
      [Caller.Refresh]: new LambdaModel(Caller.Refresh, timeoutsMs[Caller.Refresh], clock, () =>
        broker(Caller.Refresh, { refreshQueue: queue }),
      ),
      [Caller.RefreshWorker]: new LambdaModel(
        Caller.RefreshWorker,
        timeoutsMs[Caller.RefreshWorker],
        clock,
        () => broker(Caller.RefreshWorker),
      ),
      [Caller.TokenVend]: new LambdaModel(Caller.TokenVend, timeoutsMs[Caller.TokenVend], clock, () =>
        broker(Caller.TokenVend),
      ),
    };
    let workerOutcomes: Record<string, number> = {};
    queue.consume((messages) =>
      fns[Caller.RefreshWorker].invoke(async (worker, deadlineMs) => {
        const summary = await worker.refreshWorker.run(messages, deadlineMs);
        for (const [outcome, n] of Object.entries(summary.outcomes)) {
          if (n > 0) workerOutcomes[outcome] = (workerOutcomes[outcome] ?? 0) + n;
        }
        for (const failure of summary.failures) {
          const key = `failed: ${failure.errorType}`;
          workerOutcomes[key] = (workerOutcomes[key] ?? 0) + 1;
        }
      }),
    );
    let dispatch = { due: 0, dispatched: 0, claimedElsewhere: 0, deferred: 0 };
    let scheduling = true;
    const tick = () => {
      if (stopped || !scheduling) return;
      flow("refresh (dispatch)", () =>
        fns[Caller.Refresh].invoke(async (refresh, deadlineMs) => {
          if (!refresh.dispatch) throw new Error("the refresh broker has no queue");
          const summary = await refresh.dispatch.run({ deadlineMs });
          dispatch = {
            due: dispatch.due + summary.due,
            dispatched: dispatch.dispatched + summary.dispatched,
            claimedElsewhere: dispatch.claimedElsewhere + summary.claimedElsewhere,
            deferred: dispatch.deferred + summary.deferred,
          };
        }),
      );
      clock.at(clock.now() + SCHEDULE_EVERY_MS, tick);
    };

    /** Closes a stretch of the run: what every instrument counted since the last one. */
    let mark = { atMs: startMs, counts: snapshot(), wallMs: performance.now() };
    function snapshot(): Record<Caller, CallCounts> {
      return {
        [Caller.TokenVend]: copyCounts(instruments.counts[Caller.TokenVend]),
        [Caller.Refresh]: copyCounts(instruments.counts[Caller.Refresh]),
        [Caller.RefreshWorker]: copyCounts(instruments.counts[Caller.RefreshWorker]),
        [Caller.Bench]: copyCounts(instruments.counts[Caller.Bench]),
      };
    }
    const maxRunMs = { [Caller.Refresh]: 0, [Caller.RefreshWorker]: 0, [Caller.TokenVend]: 0 };
    let overruns = 0;
    const lambdaStretch = (): Record<BrokerFunctionName, InvocationStats> => {
      const taken = {
        [Caller.Refresh]: fns[Caller.Refresh].take(),
        [Caller.RefreshWorker]: fns[Caller.RefreshWorker].take(),
        [Caller.TokenVend]: fns[Caller.TokenVend].take(),
      };
      for (const fn of FUNCTIONS) {
        maxRunMs[fn] = Math.max(maxRunMs[fn], taken[fn].maxRunMs);
        overruns += taken[fn].overruns;
      }
      return taken;
    };
    const closeStretch = (): PhaseResult => {
      const now = snapshot();
      const counts = {
        [Caller.TokenVend]: diffCounts(now[Caller.TokenVend], mark.counts[Caller.TokenVend]),
        [Caller.Refresh]: diffCounts(now[Caller.Refresh], mark.counts[Caller.Refresh]),
        [Caller.RefreshWorker]: diffCounts(now[Caller.RefreshWorker], mark.counts[Caller.RefreshWorker]),
        [Caller.Bench]: diffCounts(now[Caller.Bench], mark.counts[Caller.Bench]),
      };
      const result: PhaseResult = {
        startMs: mark.atMs,
        endMs: clock.now(),
        counts,
        lambda: lambdaStretch(),
        workerOutcomes,
        dispatch,
        queue: queue.take(),
        wallMs: performance.now() - mark.wallMs,
      };
      workerOutcomes = {};
      dispatch = { due: 0, dispatched: 0, claimedElsewhere: 0, deferred: 0 };
      mark = { atMs: clock.now(), counts: now, wallMs: performance.now() };
      return result;
    };
    const run = async (untilMs: number, stepMs: number, label: () => string) => {
      while (clock.now() < untilMs) {
        await clock.runUntil(Math.min(untilMs, clock.now() + stepMs), undefined, { together: true });
        say(
          `${label()}: ${fns[Caller.RefreshWorker].running} worker run(s), queue backlog ${queue.backlog}, ${crashes.length} crash(es)${crashes[0] ? `, first: ${crashes[0]}` : ""}`,
        );
      }
    };

    // ── Seed: connections of one app, their seeds spread over a token's life ─────────────────
    const app: ScaleApp = {
      clientId: "app-scale",
      clientSecret: "cs-sEcReT-app-scale-0123456789",
      redirectUri: "https://broker.example.com/callback",
      secretId: `${CLIENT_SECRET_PREFIX}app-scale`,
    };
    stack.sim.addApp({
      clientId: app.clientId,
      clientSecret: app.clientSecret,
      redirectUris: [app.redirectUri],
    });
    instruments.putSecret(app.secretId, { clientSecret: app.clientSecret });
    const targets: SeedTarget[] = [];
    const width = String(options.connections - 1).length;
    for (let i = 0; i < options.connections; i += 1) {
      const username = `user-${i}@example.com`;
      const user = stack.sim.addUser({
        username,
        password: `pw-sEcReT-${i}-0123456789`,
        totpSecret: "JBSWY3DPEHPK3PXP",
      });
      targets.push({
        connectionId: `c${String(i).padStart(width, "0")}`,
        username,
        exactUserId: user.userId,
        division: user.division,
      });
    }
    const fastSeed = new FastSeed({
      clock,
      sim: stack.sim,
      oauth: instruments.oauth(Caller.Bench),
      cipher: instruments.cipher(cipher, Caller.Bench),
      config,
      dynamo: instruments.dynamo(Caller.Bench),
      tableName: stack.tableName,
      app,
    });
    const hotStartMs = startMs + SEED_SPREAD_MS + MINUTE_MS;
    const hotEndMs = hotStartMs + options.hotMinutes * MINUTE_MS;
    const consumers = new Consumers({
      clock,
      vendFn: fns[Caller.TokenVend],
      random,
      model: {
        burstShare: options.burstShare,
        burstVends: options.burstVends,
        tokenLifeMs: 600_000,
        windowAfterArrivalMs: (600 - config.refreshWindowSeconds) * 1000 + config.refreshMarginMs,
      },
      stopAtMs: hotEndMs,
      crash,
    });
    let template: Record<string, AttributeValue> | undefined;
    let firstFast: Record<string, AttributeValue> | undefined;
    let seeded = 0;
    for (const [i, target] of targets.entries()) {
      // On whole seconds, so seeds start together (see consumers.ts onTheSecond).
      const atMs = startMs + Math.floor((i * SEED_SPREAD_MS) / options.connections / 1000) * 1000;
      clock.at(atMs, () =>
        flow(`seed ${target.connectionId}`, async () => {
          if (i === 0) {
            // The normal path, once: the template the fast path's items are checked against.
            template = await fastSeed.seedNormally(target, broker(Caller.Bench));
            const record = toRecord(template);
            if (!record.refreshHash || record.accessIssuedAtMs === undefined)
              throw new Error("seed: no tokens");
            instruments.followHash(target.connectionId, record.refreshHash);
            instruments.arrivals.push({
              connectionId: target.connectionId,
              sentAtMs: record.chainStartedAtMs ?? record.accessIssuedAtMs,
              arrivalMs: record.accessIssuedAtMs,
              expiresInSeconds: ((record.accessExpiresAtMs ?? 0) - record.accessIssuedAtMs) / 1000,
              by: Caller.Bench,
            });
          } else {
            const seed = await fastSeed.seed(target);
            firstFast ??= seed.item;
            instruments.follow(target.connectionId, seed.refreshToken);
            instruments.arrivals.push({
              connectionId: target.connectionId,
              sentAtMs: seed.sentAtMs,
              arrivalMs: seed.arrivalMs,
              expiresInSeconds: seed.expiresInSeconds,
              by: Caller.Bench,
            });
          }
          seeded += 1;
          await consumers.run(target.connectionId);
        }),
      );
    }
    clock.at(startMs + 20_000, tick);
    say(`seeding ${options.connections} connections over ${SEED_SPREAD_MS / 1000} s of sim time`);
    await run(hotStartMs, MINUTE_MS, () => `seeded ${seeded}/${options.connections}`);
    if (seeded !== options.connections) throw new Error(`seed: ${seeded} of ${options.connections} seeded`);
    if (template && firstFast) checkSameAttributes(template, firstFast);
    const seedWallMs = performance.now() - wallStart;
    closeStretch();
    const seedVends = consumers.take();

    // ── Hot: every chain vended, refreshed by dispatcher and worker ───────────────────────────
    say(`hot phase: ${options.hotMinutes} simulated minutes`);
    await run(hotEndMs, MINUTE_MS, () => "hot");
    const hot = closeStretch();
    const hotVends = consumers.take();

    // ── Idle: no vends; refresh tokens aged over 0–30 days; keep-alives ──────────────────────
    // The schedule pauses while the queue drains and the chains go cold, so the aging below
    // meets no work in flight. (The engine's own way from hot to idle, one more refresh and a
    // cooling write at the next window, is skipped: the aging write sets what cooling would.)
    scheduling = false;
    say("vends stopped, the schedule paused");
    await run(hotEndMs + PAUSE_MS, 5 * MINUTE_MS, () => "pause");
    if (queue.backlog > 0 || fns[Caller.RefreshWorker].running > 0)
      throw new Error("work in flight after the pause");
    closeStretch();
    const { wouldHaveExpired } = await ageRefreshTokens();
    scheduling = true;
    clock.at(clock.now() + 30_000, tick);
    closeStretch();
    const idleEndMs = clock.now() + options.idleDays * DAY_MS;
    say(`idle phase: ${options.idleDays} simulated days`);
    await run(idleEndMs, 6 * HOUR_MS, () => `idle, ${workerOutcomes.keepalive ?? 0} keep-alives`);
    const idle = closeStretch();
    stopped = true;

    /**
     * Gives every chain's refresh token an age spread evenly over 0–30 days, in the item (a
     * bench-only conditional write: refreshIssuedAtMs, the keep-alive due time it implies, and no
     * vend on record, as for a chain idle that long) and at the simulator (POST
     * /_sim/refresh-token-age), at one virtual moment.
     */
    async function ageRefreshTokens(): Promise<{ wouldHaveExpired: number }> {
      const dynamo = instruments.dynamo(Caller.Bench);
      const nowMs = clock.now();
      const order = targets.map((_, i) => i);
      for (let i = order.length - 1; i > 0; i -= 1) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j] ?? 0, order[i] ?? 0];
      }
      let expiring = 0;
      let next = 0;
      const one = async (): Promise<void> => {
        for (let k = next++; k < targets.length; k = next++) {
          const target = targets[k] as SeedTarget;
          const ageMs = Math.floor((((order[k] ?? 0) + 0.5) / targets.length) * REFRESH_TTL_MS);
          if (ageMs + options.idleDays * DAY_MS >= REFRESH_TTL_MS) expiring += 1;
          const refreshIssuedAtMs = nowMs - ageMs;
          await dynamo.send(
            new UpdateItemCommand({
              TableName: stack.tableName,
              Key: marshall({ pk: connectionKey(target.connectionId) }),
              UpdateExpression: "SET #issued = :issued, #due = :due REMOVE #vended",
              ConditionExpression: "attribute_not_exists(#owner) AND #status = :active",
              ExpressionAttributeNames: {
                "#issued": "refreshIssuedAtMs",
                "#due": "dueAtMs",
                "#vended": "lastVendAtMs",
                "#owner": "leaseOwner",
                "#status": "status",
              },
              ExpressionAttributeValues: marshall({
                ":issued": refreshIssuedAtMs,
                ":due": keepaliveDueAtMs(refreshIssuedAtMs, config.keepaliveDays),
                ":active": ChainStatus.Active,
              }),
            }),
          );
          stack.sim.setRefreshTokenAge({
            clientId: app.clientId,
            username: target.username,
            ageSeconds: ageMs / 1000,
          });
        }
      };
      await clock.track(() => Promise.all(Array.from({ length: 32 }, one)));
      say(
        `aged ${targets.length} refresh tokens over 0–30 days (${expiring} would pass 30 days in the idle phase)`,
      );
      return { wouldHaveExpired: expiring };
    }

    // ── What happened ─────────────────────────────────────────────────────────────────────────
    const generations = hotGenerationStats(instruments.arrivals, hotEndMs, config);
    const stats = stack.sim.stats();
    const items = await clock.track(() => scanChains(instruments, stack.tableName));
    const endMs = clock.now();
    let liveAtEnd = 0;
    let oldestMs = 0;
    const statusesAtEnd: Record<string, number> = {};
    const targetOf = new Map(targets.map((t) => [t.connectionId, t]));
    for (const item of items) {
      statusesAtEnd[item.status] = (statusesAtEnd[item.status] ?? 0) + 1;
      const target = targetOf.get(item.connectionId);
      const live = target && stats.chains[`${app.clientId}/${target.username}`]?.liveRefreshHash;
      const ageMs = endMs - (item.refreshIssuedAtMs ?? 0);
      oldestMs = Math.max(oldestMs, ageMs);
      if (live && live === item.refreshHash && ageMs < REFRESH_TTL_MS) liveAtEnd += 1;
    }
    const eventCounts: Record<string, number> = {};
    for (const event of events.events) eventCounts[event.type] = (eventCounts[event.type] ?? 0) + 1;
    const sumVends = (a: VendStats, b: VendStats): VendStats => ({
      vends: a.vends + b.vends,
      byKind: {
        first: a.byKind.first + b.byKind.first,
        sampled: a.byKind.sampled + b.byKind.sampled,
        burst: a.byKind.burst + b.byKind.burst,
      },
      waits: a.waits + b.waits,
      madeTokenCall: a.madeTokenCall + b.madeTokenCall,
      slept: a.slept + b.slept,
      failed: a.failed + b.failed,
      failures: Object.fromEntries(
        [...new Set([...Object.keys(a.failures), ...Object.keys(b.failures)])].map((k) => [
          k,
          (a.failures[k] ?? 0) + (b.failures[k] ?? 0),
        ]),
      ),
    });
    return {
      options,
      timeoutsMs,
      seed: { normal: 1, fast: options.connections - 1, wallMs: seedWallMs },
      hot,
      idle,
      vends: sumVends(seedVends, hotVends),
      maxRunMs,
      overruns,
      hotChains: consumers.vended.size,
      hotGenerations: generations.hot,
      refreshedInTime: generations.inTime,
      refreshedByVend: generations.byVend,
      windowToArrivalMaxMs: generations.lateMaxMs,
      windowToArrivalP99Ms: generations.lateP99Ms,
      idleDays: options.idleDays,
      keepalives: idle.workerOutcomes.keepalive ?? 0,
      wouldHaveExpired,
      expiredAnswers: stats.totals.tokenRequests.expired ?? 0,
      liveAtEnd,
      statusesAtEnd,
      oldestRefreshAgeAtEndDays: oldestMs / DAY_MS,
      tokenRefusals: { ...instruments.refusals },
      events: eventCounts,
      heals,
      warnings,
      crashes,
      wallMs: performance.now() - wallStart,
    };
  } finally {
    stopped = true;
    instruments.close();
    await stack.close();
  }
}

/**
 * The hot generations: each chain's generations whose refresh window opened while its consumer
 * still vended (before the hot phase's end). One is refreshed in time when the chain's next
 * generation arrived before it expired (counted from when its request was sent: Exact issued it
 * no earlier).
 */
function hotGenerationStats(
  arrivals: Instruments["arrivals"],
  hotEndMs: number,
  config: { readonly refreshWindowSeconds: number; readonly refreshMarginMs: number },
): { hot: number; inTime: number; byVend: number; lateMaxMs: number; lateP99Ms: number } {
  const byChain = new Map<string, Array<Instruments["arrivals"][number]>>();
  for (const arrival of arrivals) {
    const list = byChain.get(arrival.connectionId) ?? [];
    list.push(arrival);
    byChain.set(arrival.connectionId, list);
  }
  let hot = 0;
  let inTime = 0;
  let byVend = 0;
  const lateMs: number[] = [];
  for (const list of byChain.values()) {
    list.sort((a, b) => a.arrivalMs - b.arrivalMs);
    for (const [k, generation] of list.entries()) {
      const windowMs =
        generation.arrivalMs +
        (generation.expiresInSeconds - config.refreshWindowSeconds) * 1000 +
        config.refreshMarginMs;
      if (windowMs >= hotEndMs) continue;
      hot += 1;
      const next = list[k + 1];
      if (!next) continue;
      if (next.arrivalMs < generation.sentAtMs + generation.expiresInSeconds * 1000) inTime += 1;
      if (next.by === Caller.TokenVend) byVend += 1;
      lateMs.push(next.arrivalMs - windowMs);
    }
  }
  lateMs.sort((a, b) => a - b);
  return { hot, inTime, byVend, lateMaxMs: lateMs.at(-1) ?? 0, lateP99Ms: percentile(lateMs, 99) };
}

/** Every connection's item (a bench-only scan at the end). */
async function scanChains(instruments: Instruments, tableName: string): Promise<ChainRecord[]> {
  const dynamo = instruments.dynamo(Caller.Bench);
  const records: ChainRecord[] = [];
  let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await dynamo.send(
      new ScanCommand({
        TableName: tableName,
        ConsistentRead: true,
        FilterExpression: "begins_with(pk, :conn)",
        ExpressionAttributeValues: marshall({ ":conn": "CONN#" }),
        ExclusiveStartKey,
      }),
    );
    for (const item of page.Items ?? []) records.push(toRecord(item));
    ExclusiveStartKey = page.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  return records;
}
