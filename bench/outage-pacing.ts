/**
 * Outage pacing (issue 9): hot chains of one app while Exact's token endpoint is down, through
 * the local stack (dynalite + the simulator over real HTTP) on a virtual clock. The outage is a
 * simulator script for every token request of the app for its length (a bare 400 with an HTML
 * body, not processed, or a 503 with one), then removed. Each chain's consumer vends every 30 s
 * (its own warm token-vend container); the scheduled refresh runs every minute as EventBridge
 * would (`refresh.run({ deadlineMs })` with the function's 85 s), runs overlapping when they sleep.
 *
 * The clock is a discrete-event one: everything runs concurrently, and time moves to the next
 * timer only when every flow waits on the clock (no DynamoDB, HTTP, cipher or secret call in
 * flight), so a refresh run sleeping for a window does not hold up the consumers' vends.
 *
 * `runOutage` is the scenario (test/chain/outage-pacing.test.ts asserts on it);
 * `npx tsx bench/outage-pacing.ts` prints the bench table alone (`--quick`: a few rows).
 */
import { pathToFileURL } from "node:url";
import type { ChainRecord } from "../lib/chain/chain-record.js";
import type { EngineLog, HealTrigger } from "../lib/chain/engine-deps.js";
import { errorsInLastHour } from "../lib/chain/error-budget.js";
import { hashToken } from "../lib/chain/token-seal.js";
import { createTokenCipher, type TokenCipher } from "../lib/crypto/token-cipher.js";
import { BrokerError } from "../lib/errors.js";
import { MemoryPublisher } from "../lib/events/event-publishers.js";
import type { TokenOutcome } from "../lib/exact/classify-token-response.js";
import { sendHttp } from "../lib/exact/http.js";
import {
  type ClientCredentials,
  ExactOAuthClient,
  type OAuthClientOptions,
} from "../lib/exact/oauth-client.js";
import { countingDynamo } from "../lib/local/counting-dynamo.js";
import { type DemoConnection, startLocalStack } from "../lib/local/local-stack.js";
import { createSecretSource, type SecretSource } from "../lib/secrets/secret-source.js";
import { mulberry32 } from "../lib/sim/prng.js";
import type { ScriptSpec } from "../lib/sim/scripts.js";
import { table } from "./stats.js";
import { EventClock } from "./support/event-clock.js";

/** Moved to bench/support/event-clock.ts; still importable from here (test/ratebudget/support.ts). */
export { EventClock };

/**
 * What Exact answers during the outage: a bare 400 (a maintenance page) that Exact's error
 * counter does not see, as the broker assumes; the same page counted against Exact's error limit
 * (the pessimistic reading: unconfirmed either way); a 503; or a gateway's 502 (nothing
 * processed, but the broker cannot know that: each chain that gets one is SUSPECT until a probe
 * gets tokens). The bench's table runs OUTAGE_KINDS; test/chain/outage-pacing.test.ts runs 502 too.
 */
export type OutageKind = "bare 400" | "bare 400, counted" | "503" | "502";
export const OUTAGE_KINDS: readonly OutageKind[] = ["bare 400", "bare 400, counted", "503"];

export interface OutageScenario {
  readonly kind: OutageKind;
  readonly outageMinutes: number;
  /** Chains of one app (one Exact user each). */
  readonly chains: number;
  /** Seed of the brokers' jitter (`random`). @default 1 */
  readonly seed?: number;
  /** How long after Exact is back the run goes on at most, waiting for every chain's token. @default 70 */
  readonly afterMaxMinutes?: number;
  /** Progress lines to stderr. */
  readonly progress?: boolean;
}

/** One refresh-grant call a broker made, with the answer as the broker classified it. */
export interface TokenCall {
  readonly atMs: number;
  readonly connectionId: string;
  readonly outcome: TokenOutcome["kind"];
  readonly status?: number;
  /** The answer's Retry-After (a 429, a 503 that sent one). */
  readonly retryAfterSeconds?: number;
}

export interface ChainOutcome {
  readonly connectionId: string;
  /** When the chain's refresh window (as stored when Exact came back) opened: it needed a token from then. */
  readonly windowAtMs: number;
  /** Arrival of the chain's first new token after Exact was back; undefined if none before the run ended. */
  readonly firstTokenAtMs?: number;
  /** firstTokenAtMs − max(Exact back, windowAtMs), ms: how long the chain waited past Exact's return. */
  readonly delayMs?: number;
  /** Most token calls that got no tokens (any answer but a success) in any rolling hour. */
  readonly failedCallsMaxPerHour: number;
  /** Most 4xx answers in any rolling hour: what the simulator's error limit counts (scripted 4xx included). */
  readonly answered4xxMaxPerHour: number;
  /** The chain's own error budget (`tokenErrors`): errors in the last hour, the most of two reads (Exact back, the end). */
  readonly brokerTokenErrors: number;
  /** The simulator's count of the pair's token requests by outcome, over the whole run (the seed's code exchange included). */
  readonly simTokenRequests: Readonly<Record<string, number>>;
  readonly calls: number;
  /** The consumer's vends that failed (retryable answers while the chain had no valid token). */
  readonly vendFailures: number;
  readonly statusAtEnd: string;
  /** At the end the item holds the refresh token Exact would accept (nothing lost). */
  readonly holdsLiveChain: boolean;
}

export interface OutageResult {
  readonly scenario: OutageScenario;
  readonly clientId: string;
  /** The script went in (epoch ms, virtual clock). */
  readonly outageStartMs: number;
  /** The script came out: Exact is back. */
  readonly backAtMs: number;
  /** The app's outage as the broker recorded it (AppState.outageSinceMs) when Exact came back. */
  readonly outageSinceMs?: number;
  readonly endMs: number;
  readonly calls: readonly TokenCall[];
  readonly chains: readonly ChainOutcome[];
  /** The app's token calls while Exact was down. */
  readonly callsDuringOutage: number;
  /** Events the brokers published, as "type connection reason" (ChainBroken would be a lost chain). */
  readonly events: readonly string[];
  /** Heals the doors asked for (none expected: an outage never breaks a chain). */
  readonly heals: readonly string[];
  /** Errors other than the broker's retryable answers, from any flow (none expected). */
  readonly crashes: readonly string[];
  /** Warnings and errors the brokers logged. */
  readonly logged: readonly string[];
  /** DynamoDB requests the brokers sent over the run (and by command), and the run's simulated minutes. */
  readonly dynamoRequests: number;
  readonly dynamoByCommand: Readonly<Record<string, number>>;
  readonly simulatedMinutes: number;
  readonly wallMs: number;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const VEND_EVERY_MS = 30_000;
const SCHEDULE_EVERY_MS = MINUTE_MS;
/** The refresh function's timeout (lib/infra/function-settings.ts: 60 s horizon + 20 s lease + 5 s). */
const REFRESH_FUNCTION_MS = 85_000;
/** lib/handlers/deadline.ts */
const DEADLINE_MARGIN_MS = 500;
/** Seconds of validity a consumer asks for (the client's default). */
const MIN_VALIDITY_S = 30;
/** One token life: the chains are seeded over it. */
const TOKEN_LIFE_MS = 10 * MINUTE_MS;
/** How long after Exact is back the run goes on at most (the simulator's error limit blocks for the rest of a clock hour). */
const AFTER_MAX_MINUTES = 70;
/** The outage starts this long before the next chain's refresh window: the broker meets it at once (the worst case). */
const LEAD_MS = 5_000;

const MAINTENANCE_PAGE =
  "<!DOCTYPE html><html><head><title>Exact Online</title></head><body><h1>Exact Online is being updated</h1><p>Please try again later.</p></body></html>";
const UNAVAILABLE_PAGE = "<html><body><h1>503 Service Unavailable</h1></body></html>";
const BAD_GATEWAY_PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>";

const OUTAGE_PAGES: Readonly<Record<OutageKind, { readonly status: number; readonly body: string }>> = {
  "bare 400": { status: 400, body: MAINTENANCE_PAGE },
  "bare 400, counted": { status: 400, body: MAINTENANCE_PAGE },
  "503": { status: 503, body: UNAVAILABLE_PAGE },
  "502": { status: 502, body: BAD_GATEWAY_PAGE },
};

function outageScript(kind: OutageKind, clientId: string): ScriptSpec {
  return {
    endpoint: "token",
    clientId,
    count: 1_000_000,
    ...OUTAGE_PAGES[kind],
    contentType: "text/html; charset=utf-8",
    counted: kind !== "bare 400",
  };
}

/** The broker's OAuth client, noting every refresh call: when, for which connection, what came back. */
class RecordingOAuthClient extends ExactOAuthClient {
  readonly #now: () => number;
  readonly #connectionOf: (refreshToken: string) => string;
  readonly #calls: TokenCall[];

  constructor(
    options: OAuthClientOptions & { readonly now: () => number },
    connectionOf: (refreshToken: string) => string,
    calls: TokenCall[],
  ) {
    super(options);
    this.#now = options.now;
    this.#connectionOf = connectionOf;
    this.#calls = calls;
  }

  override async refresh(
    baseUrl: string,
    creds: ClientCredentials,
    refreshToken: string,
    timeoutMs: number,
  ): Promise<TokenOutcome> {
    const connectionId = this.#connectionOf(refreshToken);
    const outcome = await super.refresh(baseUrl, creds, refreshToken, timeoutMs);
    this.#calls.push({
      atMs: this.#now(),
      connectionId,
      outcome: outcome.kind,
      ...("status" in outcome && outcome.status !== undefined ? { status: outcome.status } : {}),
      ...("retryAfterSeconds" in outcome && outcome.retryAfterSeconds !== undefined
        ? { retryAfterSeconds: outcome.retryAfterSeconds }
        : {}),
    });
    return outcome;
  }
}

function trackedCipher(inner: TokenCipher, track: EventClock["track"]): TokenCipher {
  return {
    encrypt: (plaintext, binding) => track(() => inner.encrypt(plaintext, binding)),
    decrypt: (ciphertext, binding) => track(() => inner.decrypt(ciphertext, binding)),
    prepare: async (chain) => {
      const sealer = await track(() => inner.prepare(chain));
      return { seal: (plaintext, kind) => track(() => sealer.seal(plaintext, kind)) };
    },
  };
}

function trackedSecrets(inner: SecretSource, track: EventClock["track"]): SecretSource {
  return {
    clientSecret: (secretId, options) => track(() => inner.clientSecret(secretId, options)),
    loginCredentials: (owner, options) => track(() => inner.loginCredentials(owner, options)),
  };
}

/** Most timestamps in any window of `windowMs` (rolling, not clock-aligned). */
export function maxInWindow(times: readonly number[], windowMs = HOUR_MS): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end += 1) {
    while ((sorted[end] ?? 0) - (sorted[start] ?? 0) >= windowMs) start += 1;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

/** Keeps the log off stdout (the bench's tables) and the test report; warnings and errors are kept. */
function keptLog(kept: string[]): EngineLog {
  return {
    info: () => undefined,
    warn: (message) => kept.push(`warn: ${message}`),
    error: (message) => kept.push(`error: ${message}`),
  };
}

/** One outage scenario, start to end; see the file's comment. */
export async function runOutage(scenario: OutageScenario): Promise<OutageResult> {
  const wallStart = performance.now();
  const say = (line: string) => {
    if (scenario.progress) process.stderr.write(`${line}\n`);
  };
  // The virtual clock starts at the top of an hour ahead of real time: the simulator's error limit
  // counts per clock hour, so where the outage falls in the hour is the same on every run.
  const startMs = (Math.floor(Date.now() / HOUR_MS) + 2) * HOUR_MS;
  const clock = new EventClock(startMs);
  const stack = await startLocalStack({ sim: { now: clock.now }, dynamoNow: clock.now });
  const crashes: string[] = [];
  let stopped = false;
  /** A background flow; anything but a retryable broker answer is a crash, reported. */
  const flow = (what: string, body: () => Promise<void>) => {
    void body().catch((error: unknown) => {
      crashes.push(`${what}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    });
  };
  try {
    const logged: string[] = [];
    const log = keptLog(logged);
    const events = new MemoryPublisher();
    const heals: string[] = [];
    const healTrigger: HealTrigger = {
      trigger: (connectionId) => void heals.push(connectionId),
      handedOff: async () => undefined,
    };
    const { client: dynamo, counts } = countingDynamo(stack.dynamo.endpoint);
    dynamo.middlewareStack.add((next) => (args) => clock.track(() => next(args)), {
      step: "initialize",
      name: "trackOnEventClock",
    });
    const calls: TokenCall[] = [];
    const clientId = `app-outage-${scenario.chains}`;
    const connections: DemoConnection[] = [];
    for (let i = 0; i < scenario.chains; i += 1) {
      connections.push(
        await stack.addConnection(`outage-${i}`, { clientId, username: `user-${i}@example.com` }),
      );
    }
    const keyOf = (c: DemoConnection) => `${c.clientId}/${c.username}`;
    const connectionByKey = new Map(connections.map((c) => [keyOf(c), c.connectionId]));
    const connectionByHash = new Map<string, string>();
    const connectionOf = (refreshToken: string): string => {
      const hash = hashToken(refreshToken);
      if (!connectionByHash.has(hash)) {
        for (const [key, chain] of Object.entries(stack.sim.stats().chains)) {
          const connectionId = connectionByKey.get(key);
          if (chain.liveRefreshHash && connectionId)
            connectionByHash.set(chain.liveRefreshHash, connectionId);
        }
      }
      return connectionByHash.get(hash) ?? "unknown";
    };
    const random = mulberry32(scenario.seed ?? 1);
    const overrides = {
      now: clock.now,
      sleep: clock.sleep,
      random,
      dynamo,
      log,
      events,
      healTrigger,
      oauth: new RecordingOAuthClient(
        { now: clock.now, send: (request) => clock.track(() => sendHttp(request)) },
        connectionOf,
        calls,
      ),
      cipher: trackedCipher(createTokenCipher(stack.env), clock.track),
      secrets: trackedSecrets(createSecretSource(stack.env), clock.track),
    };
    const store = stack.store(clock.now);
    const records = (): Promise<ChainRecord[]> =>
      clock.track(() =>
        Promise.all(
          connections.map(async (c) => {
            const record = await store.get(c.connectionId);
            if (!record) throw new Error(`connection ${c.connectionId} is gone`);
            return record;
          }),
        ),
      );

    // Seeds spread over one token life, so the chains' refresh windows are spread as a real app's are.
    const staggerMs = scenario.chains > 1 ? Math.floor((TOKEN_LIFE_MS - 30_000) / scenario.chains) : 0;
    const vendFailures = new Map<string, number>();
    for (const [i, conn] of connections.entries()) {
      flow(`consumer of ${conn.connectionId}`, async () => {
        // Its own warm token-vend container.
        const broker = stack.broker(overrides);
        await clock.sleepUntil(startMs + i * staggerMs);
        const code = stack.sim.authorize({
          clientId: conn.clientId,
          username: conn.username,
          redirectUri: conn.redirectUri,
        });
        await broker.onboarding.seed(conn.connectionId, code);
        while (!stopped) {
          const vendAtMs = clock.now();
          await broker.vend.vend(conn.connectionId, MIN_VALIDITY_S).catch((error: unknown) => {
            if (!(error instanceof BrokerError) || !error.retryable) throw error;
            vendFailures.set(conn.connectionId, (vendFailures.get(conn.connectionId) ?? 0) + 1);
          });
          await clock.sleepUntil(Math.max(clock.now(), vendAtMs + VEND_EVERY_MS));
        }
      });
    }
    flow("schedule", async () => {
      // One warm refresh container; a run that sleeps for windows overlaps the next tick's.
      const broker = stack.broker(overrides);
      await clock.sleepUntil(startMs + 20_000);
      while (!stopped) {
        flow("refresh run", async () => {
          await broker.refresh.run({ deadlineMs: clock.now() + REFRESH_FUNCTION_MS - DEADLINE_MARGIN_MS });
        });
        await clock.sleep(SCHEDULE_EVERY_MS);
      }
    });

    // Warm-up: every chain seeded and vended (hot), its windows where the seeds spread them.
    await clock.runUntil(startMs + (scenario.chains - 1) * staggerMs + MINUTE_MS);
    const nextWindowMs = Math.min(
      ...(await records()).map((r) => r.windowOpensAtMs ?? 0).filter((atMs) => atMs > clock.now() + LEAD_MS),
    );
    const outageStartMs = nextWindowMs - LEAD_MS;
    const backAtMs = outageStartMs + scenario.outageMinutes * MINUTE_MS;
    clock.at(outageStartMs, () => void stack.sim.addScript(outageScript(scenario.kind, clientId)));
    clock.at(backAtMs, () => void stack.sim.clearScripts());
    say(
      `   ${scenario.kind} for ${scenario.outageMinutes} min, ${scenario.chains} chain(s): Exact down at ${new Date(outageStartMs).toISOString().slice(11, 19)}`,
    );
    await clock.runUntil(backAtMs);
    const app = await clock.track(() => stack.broker(overrides).deps.apps.read(clientId, stack.sim.url));
    const atBack = await records();
    const windowAtMs = new Map(atBack.map((r) => [r.connectionId, r.windowOpensAtMs ?? backAtMs]));
    const firstTokenAfter = (connectionId: string): number | undefined =>
      calls.find((c) => c.connectionId === connectionId && c.outcome === "tokens" && c.atMs >= backAtMs)
        ?.atMs;
    const allServed = () => connections.every((c) => firstTokenAfter(c.connectionId) !== undefined);
    await clock.runUntil(backAtMs + (scenario.afterMaxMinutes ?? AFTER_MAX_MINUTES) * MINUTE_MS, allServed);
    // A little more, so calls just after a chain's first token count in its hours too.
    await clock.runUntil(clock.now() + 2 * MINUTE_MS);
    stopped = true;
    const endMs = clock.now();
    const atEnd = await records();

    const stats = stack.sim.stats();
    const chains: ChainOutcome[] = connections.map((conn, i) => {
      const own = calls.filter((c) => c.connectionId === conn.connectionId);
      const firstTokenAtMs = firstTokenAfter(conn.connectionId);
      const window = windowAtMs.get(conn.connectionId) ?? backAtMs;
      return {
        connectionId: conn.connectionId,
        windowAtMs: window,
        ...(firstTokenAtMs !== undefined
          ? { firstTokenAtMs, delayMs: firstTokenAtMs - Math.max(backAtMs, window) }
          : {}),
        failedCallsMaxPerHour: maxInWindow(own.filter((c) => c.outcome !== "tokens").map((c) => c.atMs)),
        answered4xxMaxPerHour: maxInWindow(
          own.filter((c) => c.status !== undefined && c.status >= 400 && c.status < 500).map((c) => c.atMs),
        ),
        brokerTokenErrors: Math.max(
          errorsInLastHour(atBack[i]?.tokenErrors, backAtMs),
          errorsInLastHour(atEnd[i]?.tokenErrors, endMs),
        ),
        simTokenRequests: stats.chains[keyOf(conn)]?.tokenRequests ?? {},
        calls: own.length,
        vendFailures: vendFailures.get(conn.connectionId) ?? 0,
        statusAtEnd: atEnd[i]?.status ?? "gone",
        holdsLiveChain:
          atEnd[i]?.refreshHash !== undefined &&
          atEnd[i]?.refreshHash === stats.chains[keyOf(conn)]?.liveRefreshHash,
      };
    });
    return {
      scenario,
      clientId,
      outageStartMs,
      backAtMs,
      ...(app.outageSinceMs !== undefined ? { outageSinceMs: app.outageSinceMs } : {}),
      endMs,
      calls,
      chains,
      callsDuringOutage: calls.filter((c) => c.atMs >= outageStartMs && c.atMs < backAtMs).length,
      events: events.events.map((e) => `${e.type} ${e.detail.connectionId} ${e.detail.reason}`),
      heals,
      crashes,
      logged,
      dynamoRequests: Object.values(counts).reduce((a, b) => a + b, 0),
      dynamoByCommand: { ...counts },
      simulatedMinutes: (endMs - startMs) / MINUTE_MS,
      wallMs: performance.now() - wallStart,
    };
  } finally {
    stopped = true;
    // Flows asleep on the clock stay asleep; none is in the middle of a call (the clock has settled).
    await stack.close();
  }
}

/** What the issue asks after an outage of `outageMinutes`: a token within this long of Exact's return (s). */
export function targetDelaySeconds(outageMinutes: number, chains: number): number {
  return chains > 1 || outageMinutes <= 15 ? 120 : 600;
}

export const TARGET_ERRORS_PER_HOUR = 8;
export const BENCH_OUTAGE_MINUTES = [1, 5, 15, 20, 30, 60] as const;

/** The bench section: outage length against the delay to the first token after it. */
export async function outagePacingTable(
  options: { readonly minutes?: readonly number[]; readonly chains?: readonly number[] } = {},
): Promise<string> {
  const rows: Array<Array<string | number>> = [];
  for (const chains of options.chains ?? [1, 10]) {
    for (const outageMinutes of options.minutes ?? BENCH_OUTAGE_MINUTES) {
      for (const kind of OUTAGE_KINDS) {
        const r = await runOutage({ kind, outageMinutes, chains, progress: true });
        const delays = r.chains.map((c) => c.delayMs);
        const served = delays.every((d) => d !== undefined);
        const maxDelayS = served ? Math.max(...delays.map((d) => d ?? 0)) / 1000 : Number.NaN;
        const target = targetDelaySeconds(outageMinutes, chains);
        const payers = new Set(
          r.calls.filter((c) => c.atMs >= r.outageStartMs && c.atMs < r.backAtMs).map((c) => c.connectionId),
        );
        rows.push([
          outageMinutes,
          kind,
          chains,
          new Date(r.outageStartMs).toISOString().slice(14, 19),
          served ? Math.round(maxDelayS) : `none in ${Math.round((r.endMs - r.backAtMs) / MINUTE_MS)} min`,
          `${target}${served && maxDelayS <= target ? "" : " MISSED"}`,
          Math.max(...r.chains.map((c) => c.failedCallsMaxPerHour)),
          Math.max(...r.chains.map((c) => c.answered4xxMaxPerHour)),
          Math.max(...r.chains.map((c) => c.brokerTokenErrors)),
          r.callsDuringOutage,
          payers.size,
          r.crashes.length + r.heals.length + r.events.length === 0 ? "none" : "SEE LOG",
          Math.round(r.wallMs),
        ]);
        for (const line of [...r.crashes, ...r.heals.map((h) => `heal ${h}`), ...r.events]) {
          process.stderr.write(`   ${line}\n`);
        }
      }
    }
  }
  return [
    table(
      [
        "outage (min)",
        "kind",
        "chains",
        "down at (mm:ss)",
        "first token after Exact is back (s), max per chain",
        "target (s)",
        "token errors per chain per hour, max",
        "of them 4xx",
        "tokenErrors (broker) max",
        "token calls during outage (app total)",
        "chains that paid",
        "events",
        "wall ms",
      ],
      rows,
    ),
    `   targets: 10 chains, 20 min of bare 400s or of 503s: every chain a token within 120 s, at most ${TARGET_ERRORS_PER_HOUR} token errors per`,
    "   chain in any hour; 1 chain: within 120 s after outages up to 15 min, 600 s after longer ones. The targets assume",
    "   what the broker assumes: Exact does not count a maintenance page ('bare 400'). 'bare 400, counted' shows the",
    "   other reading: a single chain's 10th page in a clock hour blocks its user until the hour ends (Exact's 429 and",
    "   Retry-After, which the broker honours), so the token comes after the block, not within the target.",
    "   Delay: a chain's first new token after Exact is back, from its return or from when the chain's window opened, if later.",
    "   Exact goes down 5 s before the next chain's refresh window (met at once: the worst case), at 'down at' past a clock hour.",
    "   Hot chains: consumers vend every 30 s, the scheduled refresh runs every minute. Token errors: every token call that",
    "   got no tokens (503s too); '4xx': the 4xx answers among them (the simulator's error limit counts those it is told to:",
    "   10 per app, user and clock hour, then 429 until the hour ends).",
  ].join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes("--quick");
  process.stdout.write(`${await outagePacingTable(quick ? { minutes: [5, 20], chains: [1, 10] } : {})}\n`);
}
