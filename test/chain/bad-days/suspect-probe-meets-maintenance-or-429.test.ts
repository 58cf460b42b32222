import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import type { ScriptSpec } from "../../../lib/sim/server.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  advanceToWindow,
  eventsOf,
  expectLiveChain,
  harness,
  MAINTENANCE_HTML,
  recordOf,
  tokenAnswers,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

/**
 * Issue 9: "A probe that gets a 'not processed' answer leaves the chain SUSPECT without spending
 * the probe." bad-days/outage-503-429.test.ts shows it for a 503; this shows it for the other
 * "not processed" answers, three in a row: Exact's nightly maintenance page (a bare 400, which
 * is also an odd answer: a probe's odd answer may make a chain BROKEN) and a 429.
 */
describe("a SUSPECT chain whose probe meets a not-processed answer three times in a row", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it.each<{ answer: string; script: Omit<ScriptSpec, "endpoint" | "clientId"> }>([
    {
      answer: "a bare 400 maintenance page",
      script: { status: 400, contentType: "text/html", body: MAINTENANCE_HTML },
    },
    {
      answer: "a 429 with Retry-After: 30",
      script: { status: 429, headers: { "Retry-After": "30" }, json: { error: "too_many_requests" } },
    },
  ])(
    "$answer: stays SUSPECT, never BROKEN; after it, the probe proves the chain alive",
    async ({ script }) => {
      fx = await startFixture();
      const h = harness(fx);
      const id = fx.conn.connectionId;
      await advanceToWindow(fx);
      // Reset after the request was sent, nothing processed: outcome unknown.
      fx.stack.sim.addFault({ kind: "reset", endpoint: "token", clientId: fx.conn.clientId, count: 1 });
      await vendOutcome(h.broker(), id, 30);
      expect((await recordOf(fx, id)).status).toBe(ChainStatus.Suspect);
      tokenScript(fx, { count: 3, ...script });

      const statuses: string[] = [];
      for (let tries = 0; tries < 8 && (await recordOf(fx, id)).status !== ChainStatus.Active; tries++) {
        const until = (await recordOf(fx, id)).backoffUntilMs ?? 0;
        fx.clock.advance(Math.max(1_000, until - fx.clock.now()) / 1000);
        await vendOutcome(h.broker(), id, 30);
        statuses.push((await recordOf(fx, id)).status);
      }

      expect(tokenAnswers(fx).scripted).toBe(3);
      expect(statuses.slice(0, -1).every((status) => status === ChainStatus.Suspect)).toBe(true);
      expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Active, generation: 2 });
      expect(tokenAnswers(fx).old_token).toBeUndefined();
      await expectLiveChain(fx);
      expect(eventsOf(h.events)).toEqual([]);
      expect(h.healsAsked).toEqual([]);
    },
  );
});
