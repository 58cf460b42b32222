import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { ODD_ANSWERS_BEFORE_SUSPECT, ODD_RUN_ESCALATES_AFTER_MS } from "../../../lib/chain/token-refusals.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  advanceToWindow,
  harness,
  MAINTENANCE_TEXT,
  recordOf,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

/**
 * Issue 9: "Unrecognised 4xx answers that persist while the app's other chains refresh fine are
 * no longer maintenance … A chain that answers in plain text is not left stranded forever."
 * token-refusals.ts escalates a run of odd answers only once *another* chain of the app got
 * tokens since the run began (app.lastSuccessAtMs). An app with a single connection (the usual
 * case: one app per customer) has no other chain, so a chain that answers plain text is retried
 * at the outage pace forever: never SUSPECT, never healed, until its refresh token expires.
 * Fixed: a run older than ODD_RUN_ESCALATES_AFTER_MS (6 h) escalates on its own.
 */
describe("the only chain of its app answers a plain-text 400 to every refresh, for a day", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("is escalated (SUSPECT, probe, heal) within a bounded time, not left ACTIVE and stranded", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    tokenScript(fx, { count: 10_000, status: 400, contentType: "text/plain", body: MAINTENANCE_TEXT });
    await advanceToWindow(fx);

    const statuses = new Set<string>();
    let escalatedAfterMinutes: number | undefined;
    for (let minute = 5; minute <= 24 * 60; minute += 5) {
      fx.clock.advance(300);
      await h.broker().refresh.run();
      await vendOutcome(h.broker(), id, 30);
      const { status } = await recordOf(fx, id);
      statuses.add(status);
      if (status !== ChainStatus.Active) escalatedAfterMinutes ??= minute;
    }

    // The chain kept asking Exact (at the outage pace) until it was escalated; the harness runs
    // no heal, so a BROKEN chain makes no further token call.
    expect(fx.chainStats().tokenRequests.scripted).toBeGreaterThan(ODD_ANSWERS_BEFORE_SUSPECT);
    expect({
      escalated: statuses.has(ChainStatus.Suspect) || statuses.has(ChainStatus.Broken),
      healsAsked: h.healsAsked.length > 0,
      // The bound, plus the outage pace (a probe every 5 min) and the refresher's step.
      escalatedInTime: (escalatedAfterMinutes ?? Infinity) <= ODD_RUN_ESCALATES_AFTER_MS / 60_000 + 15,
    }).toEqual({ escalated: true, healsAsked: true, escalatedInTime: true });
  }, 120_000);
});
