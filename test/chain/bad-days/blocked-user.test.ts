import { afterEach, describe, expect, it } from "vitest";
import { BLOCKED_RECHECK_MS, ChainStatus } from "../../../lib/chain/chain-record.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  eventsOf,
  expectLiveChain,
  harness,
  recordOf,
  seed,
  successfulLogins,
  tokenAnswers,
  vendOutcome,
} from "./bad-days.js";

const FORBIDDEN = { error: { code: "", message: { lang: "", value: "Forbidden" } } };

/**
 * 403 with a `Reason` header on the broker's own /current/Me call (here: the identity check of a
 * chain start, `connection seed`) while the token is valid. No login can fix a blocked user or an
 * expired licence (issue 9): BLOCKED, one UserBlocked event naming the reason, no login, vends
 * answer UserBlocked (retryable), a re-check every 30 minutes, back by itself once Exact accepts
 * the user. Exact still refreshes the chain meanwhile, so it is kept alive.
 */
describe("403 with Reason BlockedUser / InactiveUser / LicenseExpired / NoDivisionAccess on /current/Me at a chain start", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it.each([
    { reasonHeader: "BlockedUser", reason: "blocked_user" },
    { reasonHeader: "InactiveUser", reason: "inactive_user" },
    { reasonHeader: "LicenseExpired", reason: "license_expired" },
    { reasonHeader: "NoDivisionAccess", reason: "no_division_access" },
  ])(
    "$reasonHeader: BLOCKED ($reason), one event, no login, re-checked every 30 min, back by itself",
    async ({ reasonHeader, reason }) => {
      fx = await startFixture({ seed: false });
      const h = harness(fx);
      const id = fx.conn.connectionId;
      fx.stack.sim.addScript({
        endpoint: "me",
        clientId: fx.conn.clientId,
        count: 1_000,
        status: 403,
        headers: { Reason: reasonHeader },
        json: FORBIDDEN,
      });

      const seeded = await seed(fx, fx.conn, h.broker()).then(
        () => "seeded",
        (error: Error & { retryable?: boolean }) => `${error.name}${error.retryable ? " (retryable)" : ""}`,
      );

      expect(seeded).toBe("UserBlocked (retryable)");
      expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Blocked, statusReason: reason });
      // The chain Exact started is stored (it is the user's live chain): nothing to log in for.
      await expectLiveChain(fx);
      expect(eventsOf(h.events)).toEqual([["UserBlocked", id, reason]]);
      const blockedVend = await vendOutcome(h.broker(), id, 0);
      expect(blockedVend).toMatchObject({ error: "UserBlocked", retryable: true });
      expect("retryAfterSeconds" in blockedVend ? blockedVend.retryAfterSeconds : 0).toBeGreaterThan(25 * 60);

      // Two hours: the scheduled refresher every 5 minutes, a consumer asking each time.
      for (let minute = 5; minute <= 120; minute += 5) {
        fx.clock.advance(300);
        const broker = h.broker();
        await broker.refresh.run();
        expect(await vendOutcome(broker, id, 0)).toMatchObject({ error: "UserBlocked", retryable: true });
      }

      const meChecks = fx.chainStats().meRequests.scripted;
      // The seed's check, then one every BLOCKED_RECHECK_MS (30 min): 4 in two hours.
      expect(BLOCKED_RECHECK_MS).toBe(30 * 60_000);
      expect(meChecks).toBeGreaterThanOrEqual(1 + 3);
      expect(meChecks).toBeLessThanOrEqual(1 + 4);
      expect(successfulLogins(fx)).toBe(0);
      expect(h.healsAsked).toEqual([]);
      expect(eventsOf(h.events)).toEqual([["UserBlocked", id, reason]]);
      // Exact still refreshes the chain (each re-check needs a valid access token): kept alive.
      expect(tokenAnswers(fx).refreshed ?? 0).toBeGreaterThanOrEqual(3);
      expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Blocked, statusReason: reason });
      await expectLiveChain(fx);

      // Exact accepts the user again: the next re-check brings the chain back, with no login.
      fx.stack.sim.clearScripts();
      fx.clock.advance(31 * 60);
      await h.broker().refresh.run();

      expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Active });
      expect(await vendOutcome(h.broker(), id, 0)).toMatchObject({ served: expect.any(Number) });
      expect(fx.chainStats().meRequests.ok).toBe(1);
      expect(successfulLogins(fx)).toBe(0);
      expect(fx.chainStats().chainsStarted).toBe(1);
      await expectLiveChain(fx);
    },
  );
});
