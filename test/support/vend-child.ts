/**
 * A separate process that vends one connection N times at once, like N Lambda containers on
 * another machine. Argv: connectionId count startAtEpochMs minValiditySeconds. Environment: the
 * local stack's broker environment. Prints one JSON line: a hash per answer (never a token).
 */
import { createHash } from "node:crypto";
import { createBroker } from "../../lib/broker.js";
import { BrokerError } from "../../lib/errors.js";

const [connectionId = "", count = "1", startAt = "0", minValidity = "0"] = process.argv.slice(2);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

await sleep(Number(startAt) - Date.now());
const results = await Promise.all(
  Array.from({ length: Number(count) }, async () => {
    // One broker per caller: no shared cache or coalescing, every caller goes to DynamoDB.
    const broker = createBroker(process.env, { vendOptions: { coalesce: false } });
    try {
      const answer = await broker.vend.vend(connectionId, Number(minValidity));
      return {
        generation: answer.generation,
        tokenHash: createHash("sha256").update(answer.accessToken).digest("hex"),
      };
    } catch (error) {
      return { error: error instanceof BrokerError ? error.name : String(error) };
    }
  }),
);
process.stdout.write(`${JSON.stringify(results)}\n`);
