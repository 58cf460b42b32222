import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

/**
 * The identity-check budget (identityChecks, TOKEN_ERRORS_PER_HOUR = 8) exists because "Exact counts
 * a 4xx answer on /current/Me against its error limit" (identity-check.ts; the issue: checks "count as
 * errors when they fail with 4xx"). IdentityCheck#checkFailed counts EVERY ExactUnavailable, 5xx
 * and unanswered calls included. A quarter of an hour of /current/Me answering 503 spends the
 * budget, and once Me is back the stored (live) chain stays unservable until the oldest failure
 * is an hour old.
 */
describe("the identity-check budget counts only what Exact counts", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("a /current/Me outage (5xx, not counted by Exact) does not keep a stored chain unserved after Me is back", async () => {
    fx = await startFixture({ seed: false });
    fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "me", probability: 1 });
    const code = fx.stack.sim.authorize({
      clientId: fx.conn.clientId,
      username: fx.conn.username,
      redirectUri: fx.conn.redirectUri,
    });
    await fx
      .broker()
      .onboarding.seed(fx.conn.connectionId, code)
      .catch(() => undefined);
    for (let minute = 0; minute < 15; minute++) {
      fx.clock.advance(60);
      await fx.broker(NO_HEAL).refresh.run();
    }
    const during = await fx.record();
    fx.stack.sim.clearFaults();
    fx.clock.advance(60);

    const outcome = await fx
      .broker(NO_HEAL)
      .vend.vend(fx.conn.connectionId, 0)
      .then(
        () => "served",
        (e: Error) => `${e.name}: ${e.message}`,
      );
    expect(
      outcome,
      `status ${during.status}, failed checks recorded: ${during.identityChecks?.errorAtMs.length}`,
    ).toBe("served");
    expect((await fx.record()).status).toBe(ChainStatus.Active);
  });
});
