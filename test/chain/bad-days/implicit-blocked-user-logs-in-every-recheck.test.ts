import { afterEach, describe, expect, it } from "vitest";
import { BLOCKED_LOGIN_RECHECK_MS, ChainStatus } from "../../../lib/chain/chain-record.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import { eventsOf, harness, recordOf, successfulLogins, vendOutcome } from "./bad-days.js";

const FORBIDDEN = { error: { code: "", message: { lang: "", value: "Forbidden" } } };

/**
 * Issue 9, blocked user: "A state of its own, and no login … An event naming the reason." An
 * implicit-mode chain has no refresh token, so its BLOCKED re-check (verification.ts finish)
 * finds the access token expired and drops the chain ("the next login replaces it"): the
 * connection goes back to the status before the login, the next vend or refresher run logs in
 * again, the check refuses the user again, and UserBlocked is announced again. A login and an
 * event per re-check, every 30 minutes.
 */
describe("an implicit-mode connection whose Exact user is blocked", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("BLOCKED after its first login, then no further login and one UserBlocked event over two hours", async () => {
    fx = await startFixture({ mode: "implicit" });
    const h = harness(fx);
    const id = fx.conn.connectionId;
    fx.stack.sim.addScript({
      endpoint: "me",
      clientId: fx.conn.clientId,
      count: 1_000,
      status: 403,
      headers: { Reason: "BlockedUser" },
      json: FORBIDDEN,
    });
    const runHeals = async () => {
      for (const asked of h.healsAsked.splice(0))
        await h
          .broker()
          .heal.heal(asked)
          .catch(() => undefined);
    };
    await vendOutcome(h.broker(), id, 30);
    await runHeals();
    expect(await recordOf(fx, id)).toMatchObject({
      status: ChainStatus.Blocked,
      statusReason: "blocked_user",
    });
    expect(successfulLogins(fx)).toBe(1);

    for (let minute = 5; minute <= 120; minute += 5) {
      fx.clock.advance(300);
      await h.broker().refresh.run();
      await vendOutcome(h.broker(), id, 0);
      await runHeals();
    }

    expect({
      logins: successfulLogins(fx),
      userBlocked: eventsOf(h.events, "UserBlocked").length,
      status: (await recordOf(fx, id)).status,
    }).toEqual({ logins: 1, userBlocked: 1, status: ChainStatus.Blocked });
  });

  it("re-checks by one login every 6 hours, stays BLOCKED with no second event, and is back by itself once Exact accepts the user", async () => {
    fx = await startFixture({ mode: "implicit" });
    const h = harness(fx);
    const id = fx.conn.connectionId;
    fx.stack.sim.addScript({
      endpoint: "me",
      clientId: fx.conn.clientId,
      count: 1_000,
      status: 403,
      headers: { Reason: "LicenseExpired" },
      json: FORBIDDEN,
    });
    const runHeals = async () => {
      for (const asked of h.healsAsked.splice(0))
        await h
          .broker()
          .heal.heal(asked)
          .catch(() => undefined);
    };
    await vendOutcome(h.broker(), id, 30);
    await runHeals();
    const blocked = await recordOf(fx, id);
    expect(blocked).toMatchObject({ status: ChainStatus.Blocked, statusReason: "license_expired" });
    // Its token expires in 10 minutes: the re-check is a login, slowly.
    expect(Math.abs((blocked.dueAtMs ?? 0) - (fx.clock.now() + BLOCKED_LOGIN_RECHECK_MS))).toBeLessThan(
      60_000,
    );
    const blockedVend = await vendOutcome(h.broker(), id, 0);
    expect(blockedVend).toMatchObject({ error: "UserBlocked", retryable: true });

    // The re-check: one login when due; Exact still refuses the user.
    fx.clock.advance(BLOCKED_LOGIN_RECHECK_MS / 1000 + 60);
    await h.broker().refresh.run();
    expect(h.healsAsked).toEqual([id]);
    await runHeals();
    expect(successfulLogins(fx)).toBe(2);
    expect(await recordOf(fx, id)).toMatchObject({
      status: ChainStatus.Blocked,
      statusReason: "license_expired",
    });
    expect(eventsOf(h.events, "UserBlocked")).toEqual([["UserBlocked", id, "license_expired"]]);

    // Exact accepts the user again: the next re-check's login brings the connection back.
    fx.stack.sim.clearScripts();
    fx.clock.advance(BLOCKED_LOGIN_RECHECK_MS / 1000 + 60);
    await h.broker().refresh.run();
    await runHeals();

    expect(successfulLogins(fx)).toBe(3);
    expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Active });
    expect(await vendOutcome(h.broker(), id, 0)).toMatchObject({ served: expect.any(Number) });
    expect(eventsOf(h.events, "UserBlocked")).toHaveLength(1);
  });
});
