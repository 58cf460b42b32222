import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { ExactUnavailable } from "../../../lib/errors.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

/**
 * A re-seed keeps the connection's live chain beside the new one (chain-start.ts retiredChain) and
 * restores it when the new chain turns out to be another connection's (handedOver, restore). But
 * retiredChain copies the tokens and not `chainStartedAtMs`, and handedOver REMOVES every token
 * attribute the retired chain lacks: the restored chain has no start any more. adoptChain and
 * ChainHandover#land treat a missing start as "started before anything", so any older chain of
 * that user still waiting for its identity check elsewhere is handed over it.
 *
 * Here: C is seeded with user X's consent while /current/Me is down (C_X1, VERIFYING). Then A is
 * seeded with X (C_X2: Exact's live chain of X; C_X1 is dead). Then A is re-seeded with a consent
 * of user U, whom B holds: U's chain goes to B, A gets C_X2 back without its start. Then C's
 * pending check runs: C_X1's access token still shows X, whose guard A holds, and the dead C_X1
 * lands on A over the live C_X2. A breaks at its next refresh and needs a login.
 */
describe("a chain restored after a re-seed keeps its place in Exact's order", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("an older chain of the same user is never handed over a restored live chain", async () => {
    fx = await startFixture({ seed: false });
    const clientId = "app-shared";
    const x = "user-x@example.com";
    const u = "user-u@example.com";
    const a = await fx.stack.addConnection("conn-a", { username: x, clientId });
    const b = await fx.stack.addConnection("conn-b", { username: u, clientId });
    const c = await fx.stack.addConnection("conn-c", { username: x, clientId });
    await fx.stack.seed(b); // B holds U
    const seed = (id: string, redirectUri: string, username: string) =>
      fx.broker().onboarding.seed(id, fx.stack.sim.authorize({ clientId, username, redirectUri }));
    const xLive = () => fx.stack.sim.stats().chains[`${clientId}/${x}`]?.liveRefreshHash;

    // C: X's consent while /current/Me is down; stored VERIFYING.
    fx.clock.advance(10);
    fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "me", count: 1 });
    await expect(seed("conn-c", c.redirectUri, x)).rejects.toThrow(ExactUnavailable);
    expect((await fx.stack.store().get("conn-c"))?.status).toBe(ChainStatus.Verifying);

    // A: X's consent; Exact's live chain of X, verified on A (A takes X's guard).
    fx.clock.advance(10);
    await seed("conn-a", a.redirectUri, x);
    const aSeeded = await fx.stack.store().get("conn-a");
    expect(aSeeded).toMatchObject({ status: ChainStatus.Active, exactUserName: x });
    expect(aSeeded?.refreshHash).toBe(xLive());

    // A is re-seeded with U's consent: U's chain goes to B, A's own chain comes back.
    fx.clock.advance(10);
    const reseeded = await seed("conn-a", a.redirectUri, u);
    expect(reseeded.connectionId).toBe("conn-b");
    const aRestored = await fx.stack.store().get("conn-a");
    expect(aRestored?.refreshHash).toBe(xLive());

    // C's pending check runs (the scheduled refresh).
    fx.clock.advance(30);
    await fx.broker(NO_HEAL).refresh.run();

    const aAfter = await fx.stack.store().get("conn-a");
    expect
      .soft(
        { holdsXsLiveChain: aAfter?.refreshHash === xLive(), chainStartedAtMs: aAfter?.chainStartedAtMs },
        `A's chain start before the re-seed: ${aSeeded?.chainStartedAtMs}, after the restore: ${aRestored?.chainStartedAtMs}`,
      )
      .toEqual({ holdsXsLiveChain: true, chainStartedAtMs: aSeeded?.chainStartedAtMs });

    // What it costs: A's next refresh finds its chain dead.
    fx.clock.advance(600);
    await fx
      .broker(NO_HEAL)
      .vend.vend("conn-a", 30)
      .catch(() => undefined);
    expect((await fx.stack.store().get("conn-a"))?.status, "A broke although it held X's live chain").toBe(
      ChainStatus.Active,
    );
  });
});
