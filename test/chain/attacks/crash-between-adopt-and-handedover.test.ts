import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { connectionKey } from "../../../lib/chain/table-definition.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

/**
 * IdentityCheck.run hands a seeded chain over in two writes: adoptChain on the guard owner B
 * (unleased), then session.finish(handedOver) on A, which restores A's retired chain. If A's write
 * does not happen (crash, throttling), the SAME Exact chain is stored on two items with two
 * independent leases. After B refreshes it (normal use), A's pending verification finds its copy's
 * access token expired, refreshes its stale copy (a second token call on one Exact chain, under a
 * different lease), gets "old refresh token", and marks A BROKEN: A's retired chain (user X's live
 * chain, kept in verification.retired) is never restored and a login replaces it.
 */
describe("a crash between a hand-over's landing and the connection's restore", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("restores A's own live chain without a login", async () => {
    fx = await startFixture({ seed: false });
    const clientId = "app-shared";
    const x = "user-x@example.com";
    const u = "user-u@example.com";
    const a = await fx.stack.addConnection("conn-a", { username: x, clientId });
    const b = await fx.stack.addConnection("conn-b", { username: u, clientId });
    await fx.stack.seed(a); // A holds X
    await fx.stack.seed(b); // B holds U
    const xLiveBefore = fx.stack.sim.stats().chains[`${clientId}/${x}`]?.liveRefreshHash;

    // Re-seed A with U's consent; the hand-over's restore write on A fails.
    let crashed = false;
    let dead = true; // every later write of the dying invocation fails too (its #persist retries included)
    const real = fx.stack.dynamo.client;
    const crashing = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop !== "send") return Reflect.get(target, prop, receiver);
        return async (command: unknown, ...rest: unknown[]) => {
          if (dead && command instanceof UpdateItemCommand) {
            const key = unmarshall(command.input.Key ?? {}).pk;
            const expr = command.input.UpdateExpression ?? "";
            if (
              key === connectionKey("conn-a") &&
              /REMOVE .*#verification/.test(expr) &&
              /#generation \+ :one/.test(expr)
            ) {
              crashed = true;
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
      .broker({ dynamo: crashing })
      .onboarding.seed(
        "conn-a",
        fx.stack.sim.authorize({ clientId, username: u, redirectUri: a.redirectUri }),
      )
      .catch(() => undefined);
    dead = false;
    expect(crashed).toBe(true);
    expect((await fx.stack.store().get("conn-a"))?.status).toBe(ChainStatus.Verifying);

    // B is in use: its consumers refresh the adopted chain in its window.
    fx.clock.advance(600);
    await fx.broker(NO_HEAL).vend.vend(b.connectionId, 30);
    // A's pending verification runs (the scheduled refresh); its copy's access token has expired.
    fx.clock.advance(30);
    await fx.broker(NO_HEAL).refresh.run();

    const aNow = await fx.stack.store().get("conn-a");
    expect(
      { status: aNow?.status, holdsXsChain: aNow?.refreshHash === xLiveBefore },
      `A's statusReason: ${aNow?.statusReason}; token calls with an old token: ${fx.stack.sim.stats().chains[`${clientId}/${u}`]?.tokenRequests.old_token}`,
    ).toEqual({ status: ChainStatus.Active, holdsXsChain: true });
  });
});
