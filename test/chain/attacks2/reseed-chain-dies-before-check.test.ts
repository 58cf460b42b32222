import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import type { InProcessHealTrigger } from "../../../lib/chain/heal-trigger.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

/**
 * A re-seed stores the new chain VERIFYING and keeps the connection's live chain beside it
 * (verification.retired), to be restored if the new chain is not this connection's. When the new
 * chain's access token expires before its check (a /current/Me outage longer than 10 minutes),
 * PendingVerification refreshes it; if Exact answers "old refresh token" (the chain died: here
 * the user's other connection healed and started a newer chain of that user), markBroken makes
 * the connection BROKEN and ignores `retired`. The heal that follows logs in as the connection's
 * own user and so kills the very chain it had kept: a login spent, and the README's "the
 * connection being connected goes back to where it was, its own live chain restored" does not
 * hold.
 */
describe("a re-seed whose new chain dies before its identity check", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("gives the connection its own live chain back, without a login", async () => {
    fx = await startFixture({ seed: false });
    const clientId = "app-shared";
    const x = "user-x@example.com";
    const u = "user-u@example.com";
    const a = await fx.stack.addConnection("conn-a", { username: x, clientId });
    const b = await fx.stack.addConnection("conn-b", { username: u, clientId });
    await fx.stack.seed(a); // A holds X
    await fx.stack.seed(b); // B holds U
    const xLive = () => fx.stack.sim.stats().chains[`${clientId}/${x}`]?.liveRefreshHash;
    const xBefore = xLive();

    // /current/Me goes down; an operator re-seeds A with a consent that turns out to be U's.
    fx.clock.advance(60);
    fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "me", probability: 1 });
    await fx
      .broker()
      .onboarding.seed(
        "conn-a",
        fx.stack.sim.authorize({ clientId, username: u, redirectUri: a.redirectUri }),
      )
      .catch(() => undefined);
    expect((await fx.stack.store().get("conn-a"))?.status).toBe(ChainStatus.Verifying);

    // Twelve minutes of outage: B's consumers vend every minute, the refresher runs, heals run.
    for (let minute = 0; minute < 12; minute++) {
      fx.clock.advance(60);
      const broker = fx.broker({ vendOptions: { waitMs: 500 } });
      await broker.vend.vend("conn-b", 30).catch(() => undefined);
      await broker.refresh.run();
      await (broker.healTrigger as InProcessHealTrigger).settled();
    }
    fx.stack.sim.clearFaults();
    for (let minute = 0; minute < 5; minute++) {
      fx.clock.advance(60);
      const broker = fx.broker();
      await broker.refresh.run();
      await (broker.healTrigger as InProcessHealTrigger).settled();
    }

    const aNow = await fx.stack.store().get("conn-a");
    const xLogins = fx.stack.sim.stats().logins[x]?.success ?? 0;
    expect(
      { status: aNow?.status, holdsTheChainItKept: aNow?.refreshHash === xBefore, xLogins },
      `A: ${aNow?.status} (${aNow?.statusReason}); X's live chain ${xLive() === xBefore ? "is still" : "is no longer"} the one A kept`,
    ).toEqual({ status: ChainStatus.Active, holdsTheChainItKept: true, xLogins: 0 });
  });
});
