import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { connectionKey } from "../../../lib/chain/table-definition.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

/**
 * A heal on B exchanges its code (chain C_H) and, before its persisting write lands (a slow
 * UpdateItem), a seed of the same Exact user on A exchanges a code (C_A: Exact ends C_H), checks
 * /current/Me and hands C_A to B (adoptChain, any generation). Then the heal's storeStartedChain
 * (condition: fence and incarnation only, "whatever the generation was") overwrites B's live C_A
 * with the dead C_H, and its check verifies it (the old access token is still valid). Neither
 * write knows which chain Exact started last.
 */
describe("a hand-over and the owner's own chain start are ordered by when Exact started them", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("B ends with Exact's live chain", async () => {
    fx = await startFixture({ seed: false });
    const username = "shared@example.com";
    const clientId = "app-shared";
    const b = await fx.stack.addConnection("conn-b", { username, clientId });
    const a = await fx.stack.addConnection("conn-a", { username, clientId });
    await fx.stack.seed(b);
    await fx.stack.dynamo.client.send(
      new UpdateItemCommand({
        TableName: fx.stack.tableName,
        Key: marshall({ pk: connectionKey("conn-b") }),
        UpdateExpression: "SET #status = :broken, statusReason = :reason",
        ExpressionAttributeNames: { "#status": "status" },
        ExpressionAttributeValues: marshall({ ":broken": ChainStatus.Broken, ":reason": "old_token" }),
      }),
    );

    let seededA = false;
    const real = fx.stack.dynamo.client;
    const slowStore = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop !== "send") return Reflect.get(target, prop, receiver);
        return async (command: unknown, ...rest: unknown[]) => {
          if (!seededA && command instanceof UpdateItemCommand) {
            const values = command.input.ExpressionAttributeValues ?? {};
            const key = unmarshall(command.input.Key ?? {}).pk;
            if (key === connectionKey("conn-b") && ":set_verification" in values) {
              seededA = true;
              // Meanwhile: an operator seeds A with the same user's consent.
              await fx
                .broker()
                .onboarding.seed(
                  "conn-a",
                  fx.stack.sim.authorize({ clientId, username, redirectUri: a.redirectUri }),
                )
                .catch(() => undefined);
            }
          }
          // biome-ignore lint/suspicious/noExplicitAny: pass-through
          return (target.send as any)(command, ...rest);
        };
      },
    });

    const healed = await fx.broker({ dynamo: slowStore }).heal.heal("conn-b");
    expect(seededA).toBe(true);
    const bNow = await fx.stack.store().get("conn-b");
    const live = fx.stack.sim.stats().chains[`${clientId}/${username}`]?.liveRefreshHash;
    expect(
      { status: bNow?.status, holdsLive: bNow?.refreshHash === live },
      `heal said ${healed.kind}; A is ${(await fx.stack.store().get("conn-a"))?.status}`,
    ).toEqual({ status: ChainStatus.Active, holdsLive: true });
  });
});
