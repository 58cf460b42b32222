import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import type { BrokerEvent } from "../../../lib/events/broker-events.js";
import { ExactOAuthClient, type MeOutcome } from "../../../lib/exact/oauth-client.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

/** Exact answers /current/Me with 403 and `Reason: BlockedUser` (shared/exact-online.md: "A login does not fix these"). */
class MeBlockedUser extends ExactOAuthClient {
  calls = 0;
  blocked = true;
  override async me(...args: Parameters<ExactOAuthClient["me"]>): Promise<MeOutcome> {
    this.calls += 1;
    return this.blocked ? { kind: "refused", status: 403, reason: "BlockedUser" } : super.me(...args);
  }
}

/**
 * The first pass made /current/Me refusals keep the chain VERIFYING ("its next refresh or check
 * tells", README). Nothing ever concluded from them: a user Exact has blocked (403 BlockedUser,
 * InactiveUser, LicenseExpired: no login fixes these) left the connection VERIFYING for good,
 * every vend got a retryable ExactUnavailable, no event told anyone, and the broker spent 8 Exact
 * errors an hour on /current/Me, hour after hour. Now (issue 9, "Blocked user or licence"): a
 * state of its own, an event naming the reason, no login, and a slow re-check.
 */
describe("an identity check Exact refuses for a reason no login fixes", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("ends BLOCKED with one event naming the reason, re-checked slowly, and recovers by itself", async () => {
    fx = await startFixture({ seed: false });
    const oauth = new MeBlockedUser({ now: fx.clock.now });
    const events: BrokerEvent[] = [];
    const overrides = {
      oauth,
      events: { publish: async (event: BrokerEvent) => void events.push(event) },
      healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
      vendOptions: { waitMs: 1_000 },
    };
    const code = fx.stack.sim.authorize({
      clientId: fx.conn.clientId,
      username: fx.conn.username,
      redirectUri: fx.conn.redirectUri,
    });
    await fx
      .broker(overrides)
      .onboarding.seed(fx.conn.connectionId, code)
      .catch(() => undefined);

    // Three hours of scheduled runs, a consumer vending every minute.
    let vendError = "";
    for (let minute = 0; minute < 180; minute++) {
      fx.clock.advance(60);
      const broker = fx.broker(overrides);
      await broker.refresh.run();
      vendError = await broker.vend.vend(fx.conn.connectionId, 30).then(
        () => "served",
        (e: Error & { retryable?: boolean }) => `${e.name}${e.retryable ? " (retryable)" : ""}`,
      );
    }
    const record = await fx.record();
    const blockedEvents = events.filter((e) => e.type === "UserBlocked");
    expect({ status: record.status, reason: record.statusReason, vend: vendError }).toEqual({
      status: ChainStatus.Blocked,
      reason: "blocked_user",
      vend: "UserBlocked (retryable)",
    });
    expect(blockedEvents.map((e) => e.detail.reason)).toEqual(["blocked_user"]);
    // One check at the seed, then one every 30 minutes: at most 7 in three hours.
    expect(oauth.calls).toBeLessThanOrEqual(7);
    expect(fx.stack.sim.stats().logins[fx.conn.username]?.success ?? 0).toBe(0);

    // Exact accepts the user again: the next re-check brings the chain back, with no login.
    oauth.blocked = false;
    fx.clock.advance(31 * 60);
    await fx.broker(overrides).refresh.run();
    expect((await fx.record()).status).toBe(ChainStatus.Active);
    expect((await fx.broker(overrides).vend.vend(fx.conn.connectionId, 30)).generation).toBeGreaterThan(0);
  });
});
