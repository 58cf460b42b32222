import { afterEach, describe, expect, it } from "vitest";
import type { DemoConnection } from "../../../lib/local/local-stack.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import { addSibling, advanceToWindow, eventsOf, harness, tokenAnswers, vendOutcome } from "./bad-days.js";

const secretOf = (clientId: string) => `cs-sEcReT-${clientId}-0123456789`;
const STALE_SECRET = "cs-sEcReT-stale-before-the-rotation-0123456789";

function writeClientSecret(fx: Fixture, conn: DemoConnection, clientSecret: string): void {
  fx.stack.writeSecret(conn.secretId, {
    clientSecret,
    username: conn.username,
    password: `pw-sEcReT-${conn.username}-0123456789`,
    totpSecret: "JBSWY3DPEHPK3PXP",
  });
}

/**
 * In AWS every connection has a secret of its own (`exact-token-broker/connections/<id>`), so
 * after a secret is regenerated in Exact's App Center an operator updates N secrets, one by
 * one. The app keeps one rejection (app-states.ts `rejected`, one secret hash): the first chain
 * with the new secret clears it (outage-pacing.ts gate: "a new secret: try it", and after():
 * any accepted answer), then the next chain still holding the old secret is no longer held, gets
 * `invalid_client` and records the rejection anew, with a new AppRejected event. Issue 9: "One
 * event per app, not N heals and not N × errors."
 */
describe("an app's secret rotated at Exact, the operator has fixed one of three connections so far", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("one AppRejected for the rotation; the stale chains stay held (one probe per 15 min between them)", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const chains = [fx.conn, await addSibling(fx, "rot-b"), await addSibling(fx, "rot-c")];
    await advanceToWindow(fx, "rot-c");
    for (const conn of chains) writeClientSecret(fx, conn, STALE_SECRET);
    for (const conn of chains) await vendOutcome(h.broker(), conn.connectionId, 30);
    expect(eventsOf(h.events, "AppRejected")).toHaveLength(1);

    const [fixed] = chains;
    if (!fixed) throw new Error("no chain");
    writeClientSecret(fx, fixed, secretOf(fixed.clientId));
    for (let minute = 0; minute < 60; minute++) {
      fx.clock.advance(60);
      await h.broker().refresh.run();
      for (const conn of chains) await vendOutcome(h.broker(), conn.connectionId, 0);
    }

    const invalidClient = chains.reduce((sum, conn) => sum + (tokenAnswers(fx, conn).invalid_client ?? 0), 0);
    expect({ appRejected: eventsOf(h.events, "AppRejected").length, invalidClient }).toEqual({
      appRejected: 1,
      // The first answer, then at most one probe every 15 minutes for the stale secret.
      invalidClient: expect.toSatisfy((n: number) => n <= 1 + 4),
    });
  });
});
