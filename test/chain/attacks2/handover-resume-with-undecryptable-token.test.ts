import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import type { InProcessHealTrigger } from "../../../lib/chain/heal-trigger.js";
import { connectionKey } from "../../../lib/chain/table-definition.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

/**
 * A hand-over decided under the lease (`handOver` note) and interrupted before it landed is
 * resumed by PendingVerification.finish: its `record.handOver` branch comes first, before any
 * check of the stored tokens, and #fromRecord decrypts BOTH stored tokens. When the stored refresh
 * token no longer decrypts (README, "When a chain breaks": that makes a chain BROKEN; the
 * campaign's door 1d does it by swapping ciphertexts), the decrypt throws TokenDecryptError out of
 * every lease, every time: the connection stays VERIFYING forever, serves nothing (InternalError to
 * every vend), is never marked BROKEN, never healed, and its own retired chain (Exact user X's
 * live chain, kept in verification.retired) is never restored. Expected: the chain that cannot be
 * handed on is dropped and the connection gets its own live chain back, with no login.
 */
describe("an interrupted hand-over whose stored refresh token no longer decrypts", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("does not leave the connection VERIFYING (unservable) forever", async () => {
    fx = await startFixture({ seed: false });
    const clientId = "app-shared";
    const x = "user-x@example.com";
    const u = "user-u@example.com";
    const a = await fx.stack.addConnection("conn-a", { username: x, clientId });
    const b = await fx.stack.addConnection("conn-b", { username: u, clientId });
    await fx.stack.seed(a); // A holds X
    await fx.stack.seed(b); // B holds U
    const xLive = fx.stack.sim.stats().chains[`${clientId}/${x}`]?.liveRefreshHash;

    // An operator re-seeds A with U's consent; the invocation dies right after writing the
    // hand-over decision (its adoptChain on B never happens).
    let died = false;
    const real = fx.stack.dynamo.client;
    const dying = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop !== "send") return Reflect.get(target, prop, receiver);
        return async (command: unknown, ...rest: unknown[]) => {
          if (!died && command instanceof UpdateItemCommand) {
            const key = unmarshall(command.input.Key ?? {}).pk;
            if (
              key === connectionKey("conn-b") &&
              ":set_adoptedHash" in (command.input.ExpressionAttributeValues ?? {})
            ) {
              died = true;
              throw new Error("the invocation died here");
            }
          }
          // biome-ignore lint/suspicious/noExplicitAny: pass-through
          return (target.send as any)(command, ...rest);
        };
      },
    });
    fx.clock.advance(30);
    await fx
      .broker({ dynamo: dying })
      .onboarding.seed(
        "conn-a",
        fx.stack.sim.authorize({ clientId, username: u, redirectUri: a.redirectUri }),
      )
      .catch(() => undefined);
    expect(died).toBe(true);
    const pending = await fx.stack.store().get("conn-a");
    expect(pending).toMatchObject({ status: ChainStatus.Verifying, handOver: { to: "conn-b" } });

    // The stored refresh token no longer decrypts (as the campaign's "undecryptable token" door).
    await fx.stack.dynamo.client.send(
      new UpdateItemCommand({
        TableName: fx.stack.tableName,
        Key: marshall({ pk: connectionKey("conn-a") }),
        UpdateExpression: "SET refreshCt = :ct",
        ExpressionAttributeValues: marshall({ ":ct": pending?.accessCt }),
      }),
    );

    // Half an hour of scheduled runs (heals in-process), then the operator's commands.
    const errors = new Set<string>();
    for (let minute = 0; minute < 30; minute++) {
      fx.clock.advance(60);
      const broker = fx.broker();
      const run = await broker.refresh.run();
      for (const f of run.failures) if (f.connectionId === "conn-a") errors.add(`refresh: ${f.errorType}`);
      await (broker.healTrigger as InProcessHealTrigger).settled();
    }
    // By now the scheduled runs have dropped the undecryptable chain and given A its own back.
    const restored = await fx.stack.store().get("conn-a");
    expect(
      { status: restored?.status, holdsXsLiveChain: restored?.refreshHash === xLive },
      `after 30 minutes: ${[...errors].join("; ")}`,
    ).toEqual({ status: ChainStatus.Active, holdsXsLiveChain: true });
    const vended = await fx
      .broker({ vendOptions: { waitMs: 1_000 } })
      .vend.vend("conn-a", 30)
      .then(
        () => "vend: served",
        (e: Error) => `vend: ${e.name}`,
      );
    errors.add(vended);

    expect(vended).toBe("vend: served");
    void b;
  });
});
