/**
 * `npm start`: the broker end to end on this machine, against the Exact simulator.
 *
 * dynalite in-process, the simulator with short token lifetimes, a demo connection set up
 * through the CLI's own code path, then a fleet of consumers in several "containers" vending
 * concurrently over several generations while the scheduled refresher runs, and a summary.
 * Exits 0 when every vend succeeded and Exact saw exactly one refresh per generation.
 */
import { runCli } from "../lib/cli/main.js";
import { startLocalStack } from "../lib/local/local-stack.js";
import { createLogger } from "../lib/log/logger.js";

const ACCESS_TTL_S = 8;
const REFRESH_AFTER_S = 4;
const RUN_MS = 20_000;
const CONTAINERS = 3;
const CONSUMERS_PER_CONTAINER = 20;

const say = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<number> {
  say("exact-token-broker demo: dynalite + Exact simulator + the broker, all on 127.0.0.1\n");
  const stack = await startLocalStack({
    sim: { accessTtlSeconds: ACCESS_TTL_S, refreshAfterSeconds: REFRESH_AFTER_S },
    env: { REFRESH_MARGIN_MS: "200" },
  });
  const log = createLogger({ serviceName: "exact-token-broker", level: "ERROR" });
  const broker = () => stack.broker({ log });
  try {
    say(
      `1. simulator on ${stack.sim.url}: access tokens live ${ACCESS_TTL_S} s, refreshable after ${REFRESH_AFTER_S} s`,
    );
    const clientId = "demo-app";
    const redirectUri = "https://broker.example.com/callback";
    const clientSecret = "cs-sEcReT-demo-0123456789";
    stack.sim.addApp({ clientId, clientSecret, redirectUris: [redirectUri] });
    stack.sim.addUser({
      username: "demo@example.com",
      password: "pw-sEcReT-demo-0123456789",
      totpSecret: "JBSWY3DPEHPK3PXP",
    });
    stack.writeSecret("exact/demo", { clientSecret });

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
    say("2. exact-broker connection add --id demo …");
    await cli(
      "connection",
      "add",
      "--id",
      "demo",
      "--client-id",
      clientId,
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
    const code = stack.sim.authorize({ clientId, username: "demo@example.com", redirectUri });
    await cli("connection", "seed", "--id", "demo", "--code", code);

    say(
      `4. ${CONTAINERS} containers × ${CONSUMERS_PER_CONTAINER} consumers vend for ${RUN_MS / 1000} s; the refresher runs every 2 s\n`,
    );
    const containers = Array.from({ length: CONTAINERS }, () => broker());
    const tally = { vends: 0, errors: 0, meOk: 0, meRejected: 0, generations: new Set<number>() };
    const endAt = Date.now() + RUN_MS;
    const consumer = async (container: ReturnType<typeof broker>) => {
      while (Date.now() < endAt) {
        try {
          const answer = await container.vend.vend("demo", REFRESH_AFTER_S - 1);
          tally.vends += 1;
          tally.generations.add(answer.generation);
          // Use the token as a consumer would: Exact must accept it.
          const me = await fetch(`${answer.baseUrl}/api/v1/current/Me`, {
            headers: { authorization: `Bearer ${answer.accessToken}`, accept: "application/json" },
          });
          if (me.ok) tally.meOk += 1;
          else tally.meRejected += 1;
        } catch (error) {
          tally.errors += 1;
          say(`   ! vend failed: ${(error as Error).name}: ${(error as Error).message}`);
        }
        await sleep(50 + Math.random() * 250);
      }
    };
    const refresher = async () => {
      while (Date.now() < endAt) {
        await broker().refresh.run({ horizonMs: 2_000 });
        await sleep(2_000);
      }
    };
    const progress = setInterval(() => {
      const chain = stack.sim.stats().chains[`${clientId}/demo@example.com`];
      const left = Math.max(0, Math.round((endAt - Date.now()) / 1000));
      say(
        `   ${String(left).padStart(2)} s left  generation ${chain?.generation ?? 0}  vends ${tally.vends}  ` +
          `token calls ${chain?.tokenRequests.refreshed ?? 0}  errors ${tally.errors}`,
      );
    }, 2_000);
    await Promise.all([
      ...containers.flatMap((c) => Array.from({ length: CONSUMERS_PER_CONTAINER }, () => consumer(c))),
      refresher(),
    ]);
    clearInterval(progress);

    const chain = stack.sim.stats().chains[`${clientId}/demo@example.com`];
    const requests = chain?.tokenRequests;
    const refreshes = requests?.refreshed ?? 0;
    const rows: Array<[string, string | number]> = [
      ["vends", tally.vends],
      ["vend errors", tally.errors],
      ["tokens Exact accepted on /current/Me", `${tally.meOk} of ${tally.meOk + tally.meRejected}`],
      ["generations (chain at Exact)", chain?.generation ?? 0],
      ["token calls: code exchange + refreshes", `${requests?.code_exchanged ?? 0} + ${refreshes}`],
      ["old-token errors", requests?.old_token ?? 0],
      ["too-early refusals", requests?.too_early ?? 0],
    ];
    say("\nsummary");
    for (const [name, value] of rows) say(`  ${name.padEnd(40)} ${value}`);
    const ok =
      tally.errors === 0 &&
      tally.meRejected === 0 &&
      (requests?.old_token ?? 0) === 0 &&
      refreshes === (chain?.generation ?? 0) - 1 &&
      refreshes >= 3;
    say(
      ok
        ? "\nOK: one token call per generation, no old-token errors, every consumer served."
        : "\nFAILED: see above.",
    );
    return ok ? 0 : 1;
  } finally {
    await stack.close();
  }
}

process.exitCode = await main();
