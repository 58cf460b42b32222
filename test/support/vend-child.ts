/**
 * A separate process that vends one connection with N concurrent callers, like N Lambda
 * containers on another machine. Argv: connectionId count startAtEpochMs minValiditySeconds
 * [untilGeneration deadlineEpochMs]. With untilGeneration, each caller vends again every 200 ms
 * until it holds that generation (or the deadline passes). Environment: the local stack's broker
 * environment. Prints one JSON line: per caller, a hash of its last token (never the token).
 */
import { createHash } from "node:crypto";
import { createBroker } from "../../lib/broker.js";
import { BrokerError } from "../../lib/errors.js";
import { OneExactIdentityDriver } from "../../lib/exact/login/one-exact-identity-driver.js";

const [connectionId = "", count = "1", startAt = "0", minValidity = "0", until = "0", deadline = "0"] =
  process.argv.slice(2);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

await sleep(Number(startAt) - Date.now());
const results = await Promise.all(
  Array.from({ length: Number(count) }, async () => {
    // One broker per caller: no shared cache or coalescing, every caller goes to DynamoDB.
    const broker = createBroker(process.env, {
      vendOptions: { coalesce: false },
      login: new OneExactIdentityDriver({ allowLoopback: true }),
    });
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
      if ((last?.generation ?? 0) >= Number(until) || Date.now() > Number(deadline)) break;
      await sleep(200);
    }
    return { ...last, errors: [...new Set(errors)] };
  }),
);
process.stdout.write(`${JSON.stringify(results)}\n`);
