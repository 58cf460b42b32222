import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { ODD_ANSWERS_BEFORE_SUSPECT } from "../../../lib/chain/token-refusals.js";
import type { DemoConnection } from "../../../lib/local/local-stack.js";
import type { ScriptSpec } from "../../../lib/sim/server.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  addSibling,
  advanceToWindow,
  countedErrors,
  eventsOf,
  expectLiveChain,
  type Harness,
  harness,
  MAINTENANCE_TEXT,
  recordOf,
  successfulLogins,
  tokenAnswers,
  vendOutcome,
} from "./bad-days.js";

type Answer = Omit<ScriptSpec, "endpoint" | "clientId" | "count">;

const UNKNOWN_4XX: Answer = {
  status: 400,
  json: { error: "unsupported_request", error_description: "The request could not be handled." },
};
const PLAIN_TEXT_4XX: Answer = { status: 400, contentType: "text/plain", body: MAINTENANCE_TEXT };

/**
 * Scripts match the token request's client ID (lib/sim/scripts.ts ScriptRegistry.take), so a
 * script answers whichever chain of the app asks first: it cannot target one chain. Here each
 * answer is scripted for one request of chain A only: added just before A's vend and removed
 * right after it (requests are sequential, so no other chain can take it).
 */
async function vendOfAWithAnswer(fx: Fixture, h: Harness, a: DemoConnection, answer: Answer) {
  fx.stack.sim.addScript({ endpoint: "token", clientId: a.clientId, count: 1, ...answer });
  try {
    return await vendOutcome(h.broker(), a.connectionId, 30);
  } finally {
    fx.stack.sim.clearScripts();
  }
}

async function advanceToBackoffEnd(fx: Fixture, connectionId: string): Promise<void> {
  const until = (await recordOf(fx, connectionId)).backoffUntilMs ?? 0;
  if (until > fx.clock.now()) fx.clock.advance((until - fx.clock.now()) / 1000);
}

/**
 * Unrecognised 4xx answers that persist for ONE chain while the app's other chains refresh fine
 * are not maintenance (issue 9): after ODD_ANSWERS_BEFORE_SUSPECT (3) in a row the chain is
 * SUSPECT, its probe's same answer makes it BROKEN (invalid_chain), and a login heals it.
 */
describe("unrecognised 4xx answers from one chain while the app's other chains refresh fine", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("an unknown OAuth error (JSON 400): 3 in a row make the chain SUSPECT, the probe's same answer BROKEN, one login heals it", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const a = fx.conn;
    const b = await addSibling(fx, "sibling-odd");
    await advanceToWindow(fx, b.connectionId);

    // 1: A gets the odd answer; B (same app) then refreshes fine.
    expect(await vendOfAWithAnswer(fx, h, a, UNKNOWN_4XX)).toMatchObject({ error: "ExactUnavailable" });
    expect(await recordOf(fx, a.connectionId)).toMatchObject({
      status: ChainStatus.Active,
      oddAnswers: { count: 1 },
    });
    expect(await vendOutcome(h.broker(), b.connectionId, 30)).toMatchObject({ served: 2 });

    // 2 and 3: the chain's own backoff (2 s, 4 s), then SUSPECT.
    await advanceToBackoffEnd(fx, a.connectionId);
    expect(await vendOfAWithAnswer(fx, h, a, UNKNOWN_4XX)).toMatchObject({ error: "ExactUnavailable" });
    expect(await recordOf(fx, a.connectionId)).toMatchObject({
      status: ChainStatus.Active,
      oddAnswers: { count: 2 },
    });
    await advanceToBackoffEnd(fx, a.connectionId);
    expect(await vendOfAWithAnswer(fx, h, a, UNKNOWN_4XX)).toMatchObject({
      error: "ExactUnavailable",
      retryAfterSeconds: 2,
    });
    expect(ODD_ANSWERS_BEFORE_SUSPECT).toBe(3);
    expect(await recordOf(fx, a.connectionId)).toMatchObject({
      status: ChainStatus.Suspect,
      statusReason: "lost_answer",
    });
    expect(eventsOf(h.events)).toEqual([]);

    // The probe gets the same answer: BROKEN.
    await advanceToBackoffEnd(fx, a.connectionId);
    expect(await vendOfAWithAnswer(fx, h, a, UNKNOWN_4XX)).toMatchObject({ error: "ChainBusy" });
    const broken = await recordOf(fx, a.connectionId);
    expect(broken).toMatchObject({ status: ChainStatus.Broken, statusReason: "invalid_chain" });
    // Four 400s, each counted (Exact counts 4xx): well inside the chain's 8 an hour.
    expect(countedErrors(broken)).toBe(4);
    expect(eventsOf(h.events)).toEqual([["ChainBroken", a.connectionId, "invalid_chain"]]);
    expect(h.healsAsked).toEqual([a.connectionId]);
    expect(tokenAnswers(fx, a)).toEqual({ issued: 1, code_exchanged: 1, scripted: 4 });

    expect((await h.broker().heal.heal(a.connectionId)).kind).toBe("healed");
    expect(successfulLogins(fx, a)).toBe(1);
    expect(await recordOf(fx, a.connectionId)).toMatchObject({ status: ChainStatus.Active, generation: 2 });
    await expectLiveChain(fx, a);
    // B was never touched by A's trouble.
    expect(tokenAnswers(fx, b)).toEqual({ issued: 2, code_exchanged: 1, refreshed: 1 });
    expect(await recordOf(fx, b.connectionId)).toMatchObject({ status: ChainStatus.Active, generation: 2 });
    await expectLiveChain(fx, b);
    expect(successfulLogins(fx, b)).toBe(0);
  });

  it("a plain-text 400 (maintenance-like) for one chain only is not left stranded: SUSPECT after 3, BROKEN on the probe, healed", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const a = fx.conn;
    const b = await addSibling(fx, "sibling-text");
    await advanceToWindow(fx, b.connectionId);

    expect(await vendOfAWithAnswer(fx, h, a, PLAIN_TEXT_4XX)).toMatchObject({ error: "ExactUnavailable" });
    // A maintenance-like answer paces the whole app (one chain asks for all): B asks at the
    // app's next probe, 10 s later, and refreshes fine.
    fx.clock.advance(10);
    expect(await vendOutcome(h.broker(), b.connectionId, 30)).toMatchObject({ served: 2 });

    let tries = 1;
    while ((await recordOf(fx, a.connectionId)).status !== ChainStatus.Broken && tries < 10) {
      await advanceToBackoffEnd(fx, a.connectionId);
      await vendOfAWithAnswer(fx, h, a, PLAIN_TEXT_4XX);
      tries += 1;
    }

    const broken = await recordOf(fx, a.connectionId);
    expect(broken).toMatchObject({ status: ChainStatus.Broken, statusReason: "invalid_chain" });
    // Three answers and the probe reached Exact; tries held by the app's pacing sent nothing.
    expect(tokenAnswers(fx, a)).toEqual({ issued: 1, code_exchanged: 1, scripted: 4 });
    // A bare page is not counted as an Exact error (countsAsExactError: assumed not to count).
    expect(countedErrors(broken)).toBe(0);
    expect(eventsOf(h.events)).toEqual([["ChainBroken", a.connectionId, "invalid_chain"]]);

    // A's last answer was a bare page, which paces the app as an outage: the heal's code
    // exchange is a token call like any other, so it waits (without a login) for the app's next
    // probe, seconds away, and takes it.
    expect(await h.broker().heal.heal(a.connectionId)).toMatchObject({
      kind: "failed",
      errorType: "ExactUnavailable",
    });
    expect(successfulLogins(fx, a)).toBe(0);
    await advanceToBackoffEnd(fx, a.connectionId);
    expect((await h.broker().heal.heal(a.connectionId)).kind).toBe("healed");
    expect(successfulLogins(fx, a)).toBe(1);
    await expectLiveChain(fx, a);
    await expectLiveChain(fx, b);
    expect(tokenAnswers(fx, b)).toEqual({ issued: 2, code_exchanged: 1, refreshed: 1 });
  });
});
