import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { utcDay } from "../../../lib/chain/token-call-cap.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import { advanceToWindow, harness, recordOf, tokenScript, vendOutcome } from "./bad-days.js";

const PINNED = 123456;
const OTHER = 654321;
const DAY_MS = 86_400_000;

/**
 * Pinned division (issue 9): a heal whose Me shows another CurrentDivision asks Exact whether the
 * user can still open the pinned one (`GET /api/v1/{N}/system/Divisions?$top=1`). That call is a
 * REST API call under Exact's 5,000-a-day budget per app and division, which the connection's own
 * consumers spend. division-check.ts reads its 429 as "unknown", so the healed chain stays
 * VERIFYING (never served) until the budget resets at UTC midnight, although the user plainly
 * reaches the division (the simulator answers 429 only after the token and division checks pass).
 */
describe("a heal whose division check meets the division's spent daily API budget", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("serves the healed chain within 10 minutes, not at UTC midnight", async () => {
    fx = await startFixture({ division: PINNED, sim: { apiCallsPerDay: 1 } });
    const h = harness(fx);
    const id = fx.conn.connectionId;
    // A whole UTC day ahead.
    fx.clock.advance(((utcDay(fx.clock.now()) + 1) * DAY_MS + 1_000 - fx.clock.now()) / 1000);
    const vended = await h.broker().vend.vend(id, 30);
    expect(vended.division).toBe(PINNED);
    // The consumers spend the day's API budget of the pinned division.
    const spent = await fetch(`${fx.stack.sim.url}/api/v1/${PINNED}/crm/Accounts?$top=1`, {
      headers: { Authorization: `Bearer ${vended.accessToken}`, Accept: "application/json" },
    });
    expect(spent.status).toBe(200);
    // The user opened another company in the browser; it can still open the pinned one.
    fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [PINNED, OTHER], division: OTHER });
    // The chain breaks and is healed.
    tokenScript(fx, {
      status: 401,
      json: { error: "unauthorized_client", error_description: "Old refresh token used." },
    });
    await advanceToWindow(fx);
    await vendOutcome(h.broker(), id, 30);
    expect((await recordOf(fx, id)).status).toBe(ChainStatus.Broken);
    await h
      .broker()
      .heal.heal(id)
      .catch(() => undefined);

    let servedAfterMinutes: number | undefined;
    for (let minute = 1; minute <= 120 && servedAfterMinutes === undefined; minute++) {
      fx.clock.advance(60);
      await h.broker().refresh.run();
      const outcome = await vendOutcome(h.broker(), id, 0);
      if ("served" in outcome) servedAfterMinutes = minute;
    }

    // Each of the broker's division checks met the spent budget (429), none a 403.
    const api = fx.stack.sim.stats().api[`${fx.conn.clientId}/${PINNED}`];
    expect(api?.daily_limited ?? 0).toBeGreaterThan(0);
    expect(api?.no_division_access ?? 0).toBe(0);
    expect({
      servedAfterMinutes,
      status: (await recordOf(fx, id)).status,
      division: (await recordOf(fx, id)).division,
    }).toEqual({
      servedAfterMinutes: expect.toSatisfy((m: number | undefined) => m !== undefined && m <= 10),
      status: ChainStatus.Active,
      division: PINNED,
    });
  });
});
