import { afterEach, describe, expect, it } from "vitest";
import { BLOCKED_RECHECK_MS, ChainStatus } from "../../../lib/chain/chain-record.js";
import type { DemoConnection } from "../../../lib/local/local-stack.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  addSibling,
  advanceToWindow,
  countedErrors,
  eventsOf,
  expectLiveChain,
  type Harness,
  harness,
  recordOf,
  successfulLogins,
  tokenAnswers,
  vendOutcome,
} from "./bad-days.js";

/**
 * Issue 9: "403 with a `Reason` header (InactiveUser, BlockedUser, LicenseExpired,
 * NoDivisionAccess) while the token is valid. A login cannot fix a blocked user." An ACTIVE
 * chain never calls /current/Me, so the token endpoint is where the broker meets a user blocked
 * after onboarding. classify-token-response.ts reads such a 403 as `user_blocked`, and the chain
 * goes BLOCKED as for /current/Me (user-blocks.ts). Read as an unrecognised 4xx (an "odd
 * answer"), it would escalate to SUSPECT while the app's other chains refresh fine, the probe
 * would make it BROKEN (invalid_chain), and a heal (a login) would be asked for a user no login
 * can help.
 */
const BLOCKED_403 = {
  status: 403,
  headers: { Reason: "BlockedUser" },
  json: { error: "access_denied", error_description: "Forbidden" },
};

async function vendOfA(fx: Fixture, h: Harness, a: DemoConnection) {
  fx.stack.sim.addScript({ endpoint: "token", clientId: a.clientId, count: 1, ...BLOCKED_403 });
  try {
    return await vendOutcome(h.broker(), a.connectionId, 30);
  } finally {
    fx.stack.sim.clearScripts();
  }
}

describe("the token endpoint answers one chain 403 with Reason: BlockedUser while the app's other chains refresh", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("the chain is BLOCKED (blocked_user), one UserBlocked event, no ChainBroken and no heal", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const a = fx.conn;
    const b = await addSibling(fx, "blocked-sibling");
    await advanceToWindow(fx, b.connectionId);

    await vendOfA(fx, h, a);
    expect(await vendOutcome(h.broker(), b.connectionId, 30)).toMatchObject({ served: 2 });
    for (let tries = 0; tries < 6; tries++) {
      const until = (await recordOf(fx, a.connectionId)).backoffUntilMs ?? 0;
      if (until > fx.clock.now()) fx.clock.advance((until - fx.clock.now()) / 1000);
      await vendOfA(fx, h, a);
    }

    expect({
      status: (await recordOf(fx, a.connectionId)).status,
      events: eventsOf(h.events).map(([type, , reason]) => `${type} ${reason}`),
      healsAsked: h.healsAsked,
    }).toEqual({ status: ChainStatus.Blocked, events: ["UserBlocked blocked_user"], healsAsked: [] });
  });
});

describe("the token endpoint refuses a chain's user (403 Reason: LicenseExpired) for two hours", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("BLOCKED, re-checked every 30 min with no login and no new event; ACTIVE by itself once Exact accepts the user", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    await advanceToWindow(fx);
    fx.stack.sim.addScript({
      endpoint: "token",
      clientId: fx.conn.clientId,
      count: 1_000,
      status: 403,
      headers: { Reason: "LicenseExpired" },
      json: { error: "access_denied", error_description: "Forbidden" },
    });

    const first = await vendOutcome(h.broker(), id, 30);
    expect(first).toMatchObject({ error: "UserBlocked", retryable: true });
    expect("retryAfterSeconds" in first ? first.retryAfterSeconds : 0).toBe(BLOCKED_RECHECK_MS / 1000);
    // The 403 counts at Exact, so it does in the chain's budget.
    expect(countedErrors(await recordOf(fx, id))).toBe(1);
    for (let minute = 5; minute <= 120; minute += 5) {
      fx.clock.advance(300);
      const broker = h.broker();
      await broker.refresh.run();
      expect(await vendOutcome(broker, id, 0)).toMatchObject({ error: "UserBlocked", retryable: true });
    }

    // The block, then one re-check (a refresh: the stored access token expired) every 30 minutes.
    expect(tokenAnswers(fx).scripted).toBe(1 + 4);
    expect(await recordOf(fx, id)).toMatchObject({
      status: ChainStatus.Blocked,
      statusReason: "license_expired",
    });
    expect(eventsOf(h.events)).toEqual([["UserBlocked", id, "license_expired"]]);
    expect(h.healsAsked).toEqual([]);
    expect(successfulLogins(fx)).toBe(0);
    await expectLiveChain(fx);

    fx.stack.sim.clearScripts();
    fx.clock.advance(31 * 60);
    await h.broker().refresh.run();

    expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Active });
    expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ served: 2 });
    expect(successfulLogins(fx)).toBe(0);
    expect(fx.chainStats().chainsStarted).toBe(1);
    expect(eventsOf(h.events)).toEqual([["UserBlocked", id, "license_expired"]]);
    await expectLiveChain(fx);
  });
});
