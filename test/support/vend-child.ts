/**
 * A separate process that vends one connection with N concurrent callers, like N Lambda
 * containers on another machine. Argv: connectionId count minValiditySeconds [untilGeneration
 * forMs]. With untilGeneration, each caller vends again every 200 ms until it holds that
 * generation (or forMs have passed since the start). Environment: the local stack's broker
 * environment, plus CLOCK_OFFSET_MS, the test's fake-clock offset: the simulator and dynalite
 * run on that clock, so this process does too (a fixed offset: time flows in real time here).
 *
 * Start handshake, so that every process starts vending at once however long it took to load:
 * once its brokers are built the child writes the line "@@vend-child-ready" to stderr, then
 * reads its start time (epoch ms, real clock) from stdin, which the parent closes after writing it.
 * Prints one JSON line on stdout: per caller, a hash of its last token (never the token).
 */
import { createHash } from "node:crypto";
import { createBroker } from "../../lib/broker.js";
import { BrokerError } from "../../lib/errors.js";
import { OneExactIdentityDriver } from "../../lib/exact/login/one-exact-identity-driver.js";

const [connectionId = "", count = "1", minValidity = "0", until = "0", forMs = "0"] = process.argv.slice(2);
const offsetMs = Number(process.env.CLOCK_OFFSET_MS ?? "0");
const now = (): number => Date.now() + offsetMs;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

// One broker per caller: no shared cache or coalescing, every caller goes to DynamoDB.
const brokers = Array.from({ length: Number(count) }, () =>
  createBroker(process.env, {
    now,
    vendOptions: { coalesce: false },
    // The login's TOTP codes must be those of the simulator's clock.
    login: new OneExactIdentityDriver({ allowLoopback: true, now }),
  }),
);
process.stderr.write("@@vend-child-ready\n");
let go = "";
for await (const chunk of process.stdin) go += String(chunk);
const startAt = Number(go.trim());
const stopAt = startAt + Number(forMs);

await sleep(startAt - Date.now());
const results = await Promise.all(
  brokers.map(async (broker) => {
    const errors: string[] = [];
    let last: { generation: number; tokenHash: string } | undefined;
    for (;;) {
      try {
        const answer = await broker.vend.vend(connectionId, Number(minValidity));
        last = {
          generation: answer.generation,
          tokenHash: createHash("sha256").update(answer.accessToken).digest("hex"),
        };
      } catch (error) {
        errors.push(error instanceof BrokerError ? error.name : String(error));
      }
      if ((last?.generation ?? 0) >= Number(until) || Date.now() > stopAt) break;
      await sleep(200);
    }
    return { ...last, errors: [...new Set(errors)] };
  }),
);
process.stdout.write(`${JSON.stringify(results)}\n`);
