import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { connectionKey } from "../../../lib/chain/table-definition.js";
import { ExactOAuthClient } from "../../../lib/exact/oauth-client.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

/**
 * The first pass ordered two chains of one Exact user by `chainStartedAtMs`, which every door sets
 * to the ARRIVAL of Exact's answer on its own clock (login-protocol.ts `arrivalMs`, onboarding.ts
 * `arrivalMs`; lease-session.ts storeStartedChain's condition, unleased-writes.ts adoptChain's).
 * Exact starts the chain when it processes the request, anywhere between the send and the
 * arrival (up to HTTP_TIMEOUT_MS, 8 s), and the two stamps come from two processes' clocks (each
 * up to CLOCK_SKEW_BOUND_MS off). So arrival order is not Exact's order.
 *
 * Here B's heal exchanges its code (Exact starts C_B); its answer takes 5 s to arrive. Meanwhile
 * an operator seeds A with the same user's consent: Exact starts C_A (C_B dies), A's check hands
 * C_A to B (adoptChain, B's old chain is older). Then B's answer arrives: its stamp is later than
 * C_A's, so storeStartedChain overwrites B's live C_A with the dead C_B and verifies it (a dead
 * chain's access token still answers /current/Me). B's next refresh breaks and a second login
 * follows.
 */
class SlowExchangeAnswer extends ExactOAuthClient {
  #fired = false;
  constructor(
    private readonly fx: Fixture,
    private readonly meanwhile: () => Promise<unknown>,
  ) {
    super({ now: fx.clock.now });
  }

  override async exchangeCode(...args: Parameters<ExactOAuthClient["exchangeCode"]>) {
    const outcome = await super.exchangeCode(...args); // Exact has started C_B
    if (!this.#fired) {
      this.#fired = true;
      this.fx.clock.advance(1);
      await this.meanwhile();
      this.fx.clock.advance(4); // C_B's answer arrives 5 s after Exact processed the exchange
    }
    return outcome;
  }
}

describe("two chains of one Exact user are ordered as Exact started them", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("a heal whose answer arrives late does not replace the chain a hand-over brought meanwhile", async () => {
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
    fx.clock.advance(60);

    let seeded = "not run";
    const seedA = () =>
      fx
        .broker()
        .onboarding.seed("conn-a", fx.stack.sim.authorize({ clientId, username, redirectUri: a.redirectUri }))
        .then(
          (r) => (seeded = `went to ${r.connectionId}`),
          (e: Error) => (seeded = `${e.name}: ${e.message}`),
        );
    const healed = await fx.broker({ oauth: new SlowExchangeAnswer(fx, seedA) }).heal.heal("conn-b");
    expect(seeded).toBe("went to conn-b");

    const live = () => fx.stack.sim.stats().chains[`${clientId}/${username}`]?.liveRefreshHash;
    const bNow = await fx.stack.store().get("conn-b");
    expect
      .soft({ status: bNow?.status, holdsLive: bNow?.refreshHash === live() }, `heal said ${healed.kind}`)
      .toEqual({ status: ChainStatus.Active, holdsLive: true });

    // What it costs: B's next refresh finds the chain dead (BROKEN: a second login follows).
    fx.clock.advance(600);
    await fx
      .broker(NO_HEAL)
      .vend.vend("conn-b", 30)
      .catch(() => undefined);
    expect(
      (await fx.stack.store().get("conn-b"))?.status,
      "B broke although Exact's live chain had been handed to it",
    ).toBe(ChainStatus.Active);
  });
});
