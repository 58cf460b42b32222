/**
 * `npm start`: the broker end to end on this machine, against the Exact simulator.
 *
 * dynalite in-process, the simulator with short token lifetimes, a demo connection set up
 * through the CLI's own code path, then a fleet of consumers in several "containers" vending
 * concurrently over several generations while the scheduled refresher runs. Then the fault that
 * kills chains in real life (Exact rotates the chain, the answer is lost) and the broker healing
 * itself with one login while the fleet keeps vending. Last, an operator re-authorizes the
 * connection while Exact's /current/Me is down: the new chain is stored first (VERIFYING, never
 * served), and its identity check completes when Me is back, with no login. Exits 0 when every
 * phase met its goal.
 */
import type { Broker } from "../lib/broker.js";
import { runCli } from "../lib/cli/main.js";
import { BrokerError, ReauthRequired } from "../lib/errors.js";
import { MemoryPublisher } from "../lib/events/event-publishers.js";
import { startLocalStack } from "../lib/local/local-stack.js";
import { createLogger } from "../lib/log/logger.js";

const ACCESS_TTL_S = 8;
const REFRESH_AFTER_S = 4;
const STEADY_MS = 16_000;
const HEALING_MS = 14_000;
const ME_DOWN_MS = 4_000;
const ME_BACK_MS = 6_000;
const CONTAINERS = 3;
const CONSUMERS_PER_CONTAINER = 20;
const CLIENT_ID = "demo-app";
const USERNAME = "demo@example.com";

const say = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Tally {
  vends: number;
  retryable: Map<string, number>;
  reauth: number;
  meOk: number;
  meRejected: number;
}

/** Consumers vend (and use each token at Exact) until `endAt`, while the refresher runs every 2 s. */
async function runFleet(
  containers: Broker[],
  refresher: () => Broker,
  baseUrl: string,
  endAt: number,
  tally: Tally,
  useTokens = true,
) {
  const consumer = async (container: Broker) => {
    while (Date.now() < endAt) {
      try {
        const answer = await container.vend.vend("demo", REFRESH_AFTER_S - 1);
        tally.vends += 1;
        if (useTokens) {
          const me = await fetch(`${baseUrl}/api/v1/current/Me`, {
            headers: { authorization: `Bearer ${answer.accessToken}`, accept: "application/json" },
          });
          if (me.ok) tally.meOk += 1;
          else tally.meRejected += 1;
        }
      } catch (error) {
        if (error instanceof ReauthRequired) tally.reauth += 1;
        const name = error instanceof BrokerError ? error.name : "InternalError";
        tally.retryable.set(name, (tally.retryable.get(name) ?? 0) + 1);
      }
      await sleep(50 + Math.random() * 250);
    }
  };
  const schedule = async () => {
    while (Date.now() < endAt) {
      await refresher().refresh.run({ horizonMs: 2_000 });
      await sleep(2_000);
    }
  };
  await Promise.all([
    ...containers.flatMap((c) => Array.from({ length: CONSUMERS_PER_CONTAINER }, () => consumer(c))),
    schedule(),
  ]);
}

async function main(): Promise<number> {
  say("exact-token-broker demo: dynalite + Exact simulator + the broker, all on 127.0.0.1\n");
  const stack = await startLocalStack({
    sim: { accessTtlSeconds: ACCESS_TTL_S, refreshAfterSeconds: REFRESH_AFTER_S },
    env: { REFRESH_MARGIN_MS: "200" },
  });
  const log = createLogger({ serviceName: "exact-token-broker", level: "ERROR" });
  const events = new MemoryPublisher();
  const broker = () => stack.broker({ log, events });
  const chain = () => stack.sim.stats().chains[`${CLIENT_ID}/${USERNAME}`];
  try {
    say(
      `1. simulator on ${stack.sim.url}: access tokens live ${ACCESS_TTL_S} s, refreshable after ${REFRESH_AFTER_S} s`,
    );
    const redirectUri = "https://broker.example.com/callback";
    const secret = {
      clientSecret: "cs-sEcReT-demo-0123456789",
      username: USERNAME,
      password: "pw-sEcReT-demo-0123456789",
      totpSecret: "JBSWY3DPEHPK3PXP",
    };
    stack.sim.addApp({ clientId: CLIENT_ID, clientSecret: secret.clientSecret, redirectUris: [redirectUri] });
    stack.sim.addUser({ username: USERNAME, password: secret.password, totpSecret: secret.totpSecret });
    stack.writeSecret("exact/demo", secret);

    const cli = async (...argv: string[]) => {
      const code = await runCli(argv, {
        out: (line) => say(`   │ ${line}`),
        err: (line) => say(`   │ ${line}`),
        env: { ...stack.env },
        dynamo: stack.dynamo.client,
        broker,
      });
      if (code !== 0) throw new Error(`exact-broker ${argv[0]} ${argv[1]} exited ${code}`);
    };
    say(
      "2. exact-broker connection add --id demo …  (its secret holds the client secret, user name, password, TOTP secret)",
    );
    await cli(
      "connection",
      "add",
      "--id",
      "demo",
      "--client-id",
      CLIENT_ID,
      "--base-url",
      stack.sim.url,
      "--redirect-uri",
      redirectUri,
      "--secret-id",
      "exact/demo",
    );
    say(
      "3. the user authorizes the app at Exact (simulated), then: exact-broker connection seed --id demo --code …",
    );
    await cli(
      "connection",
      "seed",
      "--id",
      "demo",
      "--code",
      stack.sim.authorize({ clientId: CLIENT_ID, username: USERNAME, redirectUri }),
    );

    const containers = Array.from({ length: CONTAINERS }, () => broker());
    const progress = (endAt: number) =>
      setInterval(() => {
        const left = Math.max(0, Math.round((endAt - Date.now()) / 1000));
        const stats = chain();
        say(
          `   ${String(left).padStart(2)} s left  generation ${stats?.generation ?? 0}  vends ${steady.vends + healing.vends + reconnect.vends}  ` +
            `token calls ${stats?.tokenRequests.refreshed ?? 0}  logins ${stack.sim.stats().logins[USERNAME]?.success ?? 0}`,
        );
      }, 2_000);

    say(
      `4. ${CONTAINERS} containers × ${CONSUMERS_PER_CONTAINER} consumers vend for ${STEADY_MS / 1000} s; the refresher runs every 2 s`,
    );
    const steady: Tally = { vends: 0, retryable: new Map(), reauth: 0, meOk: 0, meRejected: 0 };
    const healing: Tally = { vends: 0, retryable: new Map(), reauth: 0, meOk: 0, meRejected: 0 };
    const reconnect: Tally = { vends: 0, retryable: new Map(), reauth: 0, meOk: 0, meRejected: 0 };
    let endAt = Date.now() + STEADY_MS;
    let ticker = progress(endAt);
    await runFleet(containers, broker, stack.sim.url, endAt, steady);
    clearInterval(ticker);
    const afterSteady = chain();

    say(
      `\n5. the fault that kills chains: Exact rotates the chain on the next refresh and the answer is lost`,
    );
    say(`   (rotate-then-drop); the fleet keeps vending for ${HEALING_MS / 1000} s`);
    stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", count: 1 });
    endAt = Date.now() + HEALING_MS;
    ticker = progress(endAt);
    await runFleet(containers, broker, stack.sim.url, endAt, healing);
    clearInterval(ticker);

    const afterHealing = chain();
    const loginsAfterHealing = stack.sim.stats().logins[USERNAME]?.success ?? 0;

    say(
      `\n6. Exact's /current/Me answers 503 while an operator re-authorizes the connection (a new consent):`,
    );
    say(
      "   the new chain is stored first, checked later; consumers skip their own /current/Me calls meanwhile",
    );
    stack.sim.addFault({ kind: "status", status: 503, endpoint: "me", probability: 1 });
    const seedCode = await runCli(
      [
        "connection",
        "seed",
        "--id",
        "demo",
        "--code",
        stack.sim.authorize({ clientId: CLIENT_ID, username: USERNAME, redirectUri }),
      ],
      {
        out: (line) => say(`   │ ${line}`),
        err: (line) => say(`   │ ${line}`),
        env: { ...stack.env },
        dynamo: stack.dynamo.client,
        broker,
      },
    );
    const storedStatus = (await stack.store().get("demo"))?.status;
    say(`   exact-broker connection seed exited ${seedCode}; the chain is ${storedStatus}`);
    endAt = Date.now() + ME_DOWN_MS;
    ticker = progress(endAt);
    await runFleet(containers, broker, stack.sim.url, endAt, reconnect, false);
    clearInterval(ticker);
    say("   /current/Me is back");
    stack.sim.clearFaults();
    endAt = Date.now() + ME_BACK_MS;
    ticker = progress(endAt);
    await runFleet(containers, broker, stack.sim.url, endAt, reconnect);
    clearInterval(ticker);
    const verifiedStatus = (await stack.store().get("demo"))?.status;

    const final = chain();
    const logins = stack.sim.stats().logins[USERNAME]?.success ?? 0;
    const refused = (t: Tally) => [...t.retryable].map(([name, n]) => `${name} ${n}`).join(", ") || "none";
    const rows: Array<[string, string | number]> = [
      ["steady: vends", steady.vends],
      ["steady: refusals", refused(steady)],
      [
        "steady: generations, token calls",
        `${afterSteady?.generation ?? 0}, ${afterSteady?.tokenRequests.refreshed ?? 0} refreshes + 1 code exchange`,
      ],
      ["killed: vends", healing.vends],
      ["killed: refusals while healing (retryable)", refused(healing)],
      ["killed: logins to heal the chain", loginsAfterHealing],
      [
        "re-authorized while Me was down: stored as",
        `${storedStatus} (seed exited ${seedCode}), then ${verifiedStatus}`,
      ],
      ["re-authorized: vends, refusals", `${reconnect.vends}, ${refused(reconnect)}`],
      ["re-authorized: logins needed", logins - loginsAfterHealing],
      ["events", events.events.map((e) => `${e.type}(${e.detail.reason})`).join(", ")],
      [
        "tokens Exact accepted on /current/Me",
        `${steady.meOk + healing.meOk} of ${steady.meOk + healing.meOk + steady.meRejected + healing.meRejected}`,
      ],
      ["old-token answers (the probe after the lost answer)", final?.tokenRequests.old_token ?? 0],
      ["too-early refusals", final?.tokenRequests.too_early ?? 0],
      [
        "chain generation at Exact, chains started",
        `${final?.generation ?? 0}, ${final?.chainsStarted ?? 0}`,
      ],
    ];
    say("\nsummary");
    for (const [name, value] of rows) say(`  ${name.padEnd(52)} ${value}`);
    const steadyOk =
      steady.retryable.size === 0 &&
      steady.meRejected === 0 &&
      (afterSteady?.tokenRequests.refreshed ?? 0) === (afterSteady?.generation ?? 0) - 1 &&
      (afterSteady?.tokenRequests.refreshed ?? 0) >= 3;
    // The probe after the lost answer is the one old-token answer Exact may see.
    const healedOk =
      loginsAfterHealing === 1 &&
      healing.reauth === 0 &&
      healing.meRejected === 0 &&
      (afterHealing?.tokenRequests.old_token ?? 0) <= 1 &&
      (afterHealing?.chainsStarted ?? 0) === 2;
    // Exit 5 (try again later): the chain is stored, its check pending; no token was served from it meanwhile.
    const reconnectOk =
      seedCode === 5 &&
      storedStatus === "VERIFYING" &&
      verifiedStatus === "ACTIVE" &&
      logins === loginsAfterHealing &&
      reconnect.reauth === 0 &&
      reconnect.meRejected === 0 &&
      (final?.chainsStarted ?? 0) === 3;
    say(
      steadyOk
        ? "\nOK (steady): one token call per generation, no old-token errors, every consumer served."
        : "\nFAILED: the steady phase missed its goal.",
    );
    say(
      healedOk
        ? "OK (killed): the chain healed itself with one login; nobody was told to re-authorize."
        : "FAILED: the chain did not heal as it should.",
    );
    say(
      reconnectOk
        ? "OK (re-authorized): the new chain was stored before its identity check and served once the check passed."
        : "FAILED: the re-authorization did not go as it should.",
    );
    return steadyOk && healedOk && reconnectOk ? 0 : 1;
  } finally {
    await stack.close();
  }
}

process.exitCode = await main();
