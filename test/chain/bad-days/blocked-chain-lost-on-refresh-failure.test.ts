import { afterEach, describe, expect, it } from "vitest";
import {
  BLOCKED_LOGIN_RECHECK_MS,
  BLOCKED_RECHECK_MS,
  ChainStatus,
} from "../../../lib/chain/chain-record.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  advanceToWindow,
  eventsOf,
  expectLiveChain,
  GATEWAY_FAULT,
  type Harness,
  harness,
  recordOf,
  successfulLogins,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

const FORBIDDEN = { error: { code: "", message: { lang: "", value: "Forbidden" } } };

/**
 * A BLOCKED chain is kept alive by refreshes (each 30-minute re-check refreshes its expired access
 * token first). The refusal transitions do not know BLOCKED: a dead answer goes through
 * markBroken → restoreAfterDeath (the chain's verification note is still there), which for a
 * heal-started chain means BROKEN and a heal, i.e. a login for a user Exact refuses; an unknown
 * outcome writes SUSPECT, so the vend answers ExactUnavailable instead of UserBlocked, and the
 * probe's success makes it VERIFYING, whose check announces UserBlocked a second time.
 */
async function blockedAfterHeal(fx: Fixture, h: Harness): Promise<string> {
  const id = fx.conn.connectionId;
  // The chain breaks ("old refresh token", nothing processed), and the user is blocked by now.
  tokenScript(fx, {
    status: 401,
    json: { error: "unauthorized_client", error_description: "Old refresh token used." },
  });
  await advanceToWindow(fx);
  await vendOutcome(h.broker(), id, 30);
  expect((await recordOf(fx, id)).status).toBe(ChainStatus.Broken);
  fx.stack.sim.addScript({
    endpoint: "me",
    clientId: fx.conn.clientId,
    count: 1_000,
    status: 403,
    headers: { Reason: "BlockedUser" },
    json: FORBIDDEN,
  });
  await h
    .broker()
    .heal.heal(id)
    .catch(() => undefined);
  expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Blocked, statusReason: "blocked_user" });
  expect(successfulLogins(fx)).toBe(1);
  return id;
}

describe("a BLOCKED chain whose keep-alive refresh fails", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("a dead answer does not lead to a login for the blocked user", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = await blockedAfterHeal(fx, h);
    const healsBefore = h.healsAsked.length;

    // The re-check's refresh: Exact ended the blocked user's chain.
    tokenScript(fx, {
      status: 400,
      json: {
        error: "invalid_grant",
        error_description: "Token is not allowed, because of invalid or empty chainId",
      },
    });
    fx.clock.advance(BLOCKED_RECHECK_MS / 1000 + 60);
    await h.broker().refresh.run();
    // The next scheduled run finds the chain BROKEN and asks for its heal.
    fx.clock.advance(60);
    await h.broker().refresh.run();
    for (const asked of h.healsAsked.slice(healsBefore))
      await h
        .broker()
        .heal.heal(asked)
        .catch(() => undefined);

    expect({
      status: (await recordOf(fx, id)).status,
      healsAsked: h.healsAsked.length - healsBefore,
      logins: successfulLogins(fx),
    }).toEqual({ status: expect.not.stringMatching(/BROKEN|HEALING/), healsAsked: 0, logins: 1 });
  });

  it("without its chain it stays BLOCKED, re-checks by a login every 6 hours, and is back by itself once Exact accepts the user", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = await blockedAfterHeal(fx, h);
    const healsBefore = h.healsAsked.length;
    tokenScript(fx, {
      status: 401,
      json: { error: "unauthorized_client", error_description: "Old refresh token used." },
    });
    fx.clock.advance(BLOCKED_RECHECK_MS / 1000 + 60);
    await h.broker().refresh.run();
    const chainless = await recordOf(fx, id);
    expect(chainless).toMatchObject({ status: ChainStatus.Blocked, statusReason: "blocked_user" });
    expect(chainless.refreshCt).toBeUndefined();
    expect(await vendOutcome(h.broker(), id, 0)).toMatchObject({ error: "UserBlocked", retryable: true });

    // Six hours on: the re-check is a login (a new chain), and Exact still refuses the user.
    fx.clock.advance(BLOCKED_LOGIN_RECHECK_MS / 1000 + 60);
    await h.broker().refresh.run();
    expect(h.healsAsked.slice(healsBefore)).toEqual([id]);
    await h.broker().heal.heal(id);
    expect(successfulLogins(fx)).toBe(2);
    expect(await recordOf(fx, id)).toMatchObject({
      status: ChainStatus.Blocked,
      statusReason: "blocked_user",
    });
    await expectLiveChain(fx);

    // Exact accepts the user: the next re-check (with /current/Me, the chain kept alive) brings it back.
    fx.stack.sim.clearScripts();
    fx.clock.advance(BLOCKED_RECHECK_MS / 1000 + 60);
    await h.broker().refresh.run();
    expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Active });
    await expectLiveChain(fx);
    expect({
      logins: successfulLogins(fx),
      userBlocked: eventsOf(h.events, "UserBlocked").length,
      chainBroken: eventsOf(h.events, "ChainBroken").length,
    }).toEqual({ logins: 2, userBlocked: 1, chainBroken: 1 });
  });

  it("a 502 (nothing processed) keeps it BLOCKED: vends answer UserBlocked, no second UserBlocked event", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = await blockedAfterHeal(fx, h);

    tokenScript(fx, { status: 502, json: GATEWAY_FAULT });
    fx.clock.advance(BLOCKED_RECHECK_MS / 1000 + 60);
    await h.broker().refresh.run();
    const during = await vendOutcome(h.broker(), id, 0);
    for (let round = 0; round < 3; round++) {
      fx.clock.advance(5);
      await h.broker().refresh.run();
      await vendOutcome(h.broker(), id, 0);
    }

    expect({
      vendDuringCheck: "error" in during ? during.error : "served",
      status: (await recordOf(fx, id)).status,
      userBlockedEvents: eventsOf(h.events, "UserBlocked").length,
    }).toEqual({ vendDuringCheck: "UserBlocked", status: ChainStatus.Blocked, userBlockedEvents: 1 });
  });
});
