import { DeleteItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { connectionKey } from "../../../lib/chain/table-definition.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

/**
 * ConnectionRegistry.removeConnection is two writes: DeleteItem of the connection, then the
 * guard's release. A crash (or a failed second call) between them leaves a guard naming a
 * connection that does not exist. IdentityCheck#handTo then finds no target (`store.get(owner)`
 * undefined -> false) and #busy keeps the new chain VERIFYING "because the owner is verifying a
 * chain of its own", forever: Exact's live chain for that user is stored but never served, and
 * nothing (no CLI command) clears the guard. Re-adding a connection with the removed ID makes the
 * next check hand the chain to that new, never-consented connection.
 */
describe("a guard left behind by an interrupted `connection remove`", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("does not strand a later seed of that Exact user in VERIFYING", async () => {
    fx = await startFixture({ seed: false });
    const username = "shared@example.com";
    const clientId = "app-shared";
    const b = await fx.stack.addConnection("conn-b", { username, clientId });
    const a = await fx.stack.addConnection("conn-a", { username, clientId });
    await fx.stack.seed(b);

    // `connection remove --id conn-b` dies after its DeleteItem, before releasing the guard.
    await fx.stack.dynamo.client.send(
      new DeleteItemCommand({
        TableName: fx.stack.tableName,
        Key: marshall({ pk: connectionKey("conn-b") }),
      }),
    );

    const code = fx.stack.sim.authorize({ clientId, username, redirectUri: a.redirectUri });
    const seeded = await fx
      .broker()
      .onboarding.seed("conn-a", code)
      .then(
        () => "ok",
        (e: Error) => `${e.name}: ${e.message}`,
      );
    // Later checks (scheduled refresh, vends) over the next half hour.
    for (let i = 0; i < 30; i++) {
      fx.clock.advance(60);
      await fx.broker(NO_HEAL).refresh.run();
    }
    const record = await fx.stack.store().get("conn-a");
    expect.soft(seeded).toBe("ok");
    expect(record?.status, `seed said: ${seeded}`).toBe(ChainStatus.Active);
  });
});

/**
 * The same stale guard from the other two-step write: IdentityCheck.run verifies a re-seed with a
 * new Exact user (session.finish(verified)) and only then releases the old user's guard
 * (store.releaseGuard). If that second call fails, the guard of the OLD user still names the
 * connection, which now holds ANOTHER user's chain. The next seed of the old user elsewhere hands
 * its chain to that connection: UnleasedWrites.adoptChain does not compare target.exactUserId with
 * the identity it writes, so it overwrites the connection's live chain of its current user with
 * the old user's chain (and relabels the connection).
 */
describe("a guard left behind by a re-seed with another user", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("never hands a chain to a connection that now belongs to another Exact user", async () => {
    const { DeleteItemCommand: Delete } = await import("@aws-sdk/client-dynamodb");
    const { unmarshall } = await import("@aws-sdk/util-dynamodb");
    fx = await startFixture({ seed: false });
    const clientId = "app-shared";
    const x = "user-x@example.com";
    const u = "user-u@example.com";
    const a = await fx.stack.addConnection("conn-a", { username: x, clientId });
    const c = await fx.stack.addConnection("conn-c", { username: x, clientId });
    await fx.stack.addConnection("conn-u", { username: u, clientId }); // registers user U at the sim
    await fx.stack.seed(a); // A holds X; guard X -> A

    // The operator re-seeds A with user U's consent; the guard release (DeleteItem) fails once.
    let failed = false;
    const real = fx.stack.dynamo.client;
    const flaky = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop !== "send") return Reflect.get(target, prop, receiver);
        return async (command: unknown, ...rest: unknown[]) => {
          if (
            !failed &&
            command instanceof Delete &&
            String(unmarshall(command.input.Key ?? {}).pk).startsWith("GUARD#")
          ) {
            failed = true;
            throw Object.assign(new Error("Rate of requests exceeds the allowed throughput"), {
              name: "ThrottlingException",
            });
          }
          // biome-ignore lint/suspicious/noExplicitAny: pass-through
          return (target.send as any)(command, ...rest);
        };
      },
    });
    fx.clock.advance(60);
    const reseed = await fx
      .broker({ dynamo: flaky })
      .onboarding.seed(
        "conn-a",
        fx.stack.sim.authorize({ clientId, username: u, redirectUri: a.redirectUri }),
      )
      .then(
        () => "ok",
        (e: Error) => e.name,
      );
    const aReseeded = await fx.stack.store().get("conn-a");
    expect(aReseeded).toMatchObject({ status: ChainStatus.Active, exactUserName: u });
    const uLive = fx.stack.sim.stats().chains[`${clientId}/${u}`]?.liveRefreshHash;
    expect(aReseeded?.refreshHash).toBe(uLive);

    // Later another connection is seeded with user X.
    fx.clock.advance(60);
    await fx
      .broker()
      .onboarding.seed(
        "conn-c",
        fx.stack.sim.authorize({ clientId, username: x, redirectUri: c.redirectUri }),
      )
      .catch(() => undefined);

    const aAfter = await fx.stack.store().get("conn-a");
    expect(
      { exactUserName: aAfter?.exactUserName, holdsUsLiveChain: aAfter?.refreshHash === uLive },
      `A (re-seeded with U; the re-seed reported ${reseed}) was overwritten with X's chain`,
    ).toEqual({ exactUserName: u, holdsUsLiveChain: true });
  });
});
