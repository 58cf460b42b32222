import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { connectionKey } from "../../../lib/chain/table-definition.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

/**
 * LeaseSession.storeStartedChain repeats its write after an error (retryWithin: "the write's
 * condition makes a repeat harmless"; the AWS SDK also resends a request whose answer timed out).
 * Its condition now includes `chainStartedAtMs < :started`. When the first attempt landed and only
 * its answer was lost, the repeat finds chainStartedAtMs EQUAL to its own start and fails; the
 * session takes that for "the lease is someone else's or a later chain is stored", releases the
 * lease and reports the chain not stored. The seed then tells the operator "the lease was lost
 * before Exact's answer was stored; get a new code and seed again" while Exact's new chain IS
 * stored (VERIFYING), and the identity check it should have made is skipped (a heal's login
 * likewise returns "superseded": skipped/busy).
 */
describe("a chain start whose persisting write is repeated", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("goes on with the check when the first attempt had landed", async () => {
    fx = await startFixture({ seed: false });
    let lost = false;
    const real = fx.stack.dynamo.client;
    const lossy = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop !== "send") return Reflect.get(target, prop, receiver);
        return async (command: unknown, ...rest: unknown[]) => {
          // biome-ignore lint/suspicious/noExplicitAny: pass-through
          const out = await (target.send as any)(command, ...rest);
          if (
            !lost &&
            command instanceof UpdateItemCommand &&
            unmarshall(command.input.Key ?? {}).pk === connectionKey(fx.conn.connectionId) &&
            ":set_verification" in (command.input.ExpressionAttributeValues ?? {})
          ) {
            lost = true; // the write landed; its answer did not arrive
            throw Object.assign(new Error("socket hang up"), { name: "TimeoutError" });
          }
          return out;
        };
      },
    });
    const code = fx.stack.sim.authorize({
      clientId: fx.conn.clientId,
      username: fx.conn.username,
      redirectUri: fx.conn.redirectUri,
    });
    const seeded = await fx
      .broker({ dynamo: lossy })
      .onboarding.seed(fx.conn.connectionId, code)
      .then(
        (r) => `seeded ${r.exactUserName}`,
        (e: Error) => `${e.name}: ${e.message}`,
      );
    expect(lost).toBe(true);
    const record = await fx.record();
    expect(record.refreshHash).toBe(fx.chainStats().liveRefreshHash); // Exact's answer is stored
    expect({ seeded, status: record.status }).toEqual({
      seeded: `seeded ${fx.conn.username}`,
      status: ChainStatus.Active,
    });
  });
});
