import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkPinnedDivision } from "../../lib/chain/division-check.js";
import { type DivisionOutcome, ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import type { Simulator } from "../../lib/sim/server.js";
import { ALICE, login, startTestSimulator } from "../sim/helpers.js";

/** A client whose division check answers `outcome`, for the mapping alone. */
function answering(outcome: DivisionOutcome): ExactOAuthClient {
  return new (class extends ExactOAuthClient {
    override async divisionReachable(): Promise<DivisionOutcome> {
      return outcome;
    }
  })();
}

const args = { baseUrl: "https://start.exactonline.nl", accessToken: "t", division: 1, timeoutMs: 1_000 };

describe("checkPinnedDivision", () => {
  describe("against the simulator", () => {
    let sim: Simulator;
    beforeAll(async () => {
      sim = await startTestSimulator();
    });
    afterAll(() => sim.close());

    it("answers reachable for a division the user can open and unreachable (403 NoDivisionAccess) for another", async () => {
      const { accessToken } = await login(sim);
      const oauth = new ExactOAuthClient();

      const own = await oauth.divisionReachable(sim.url, accessToken, ALICE.division, 2_000);
      const other = await oauth.divisionReachable(sim.url, accessToken, 42, 2_000);

      expect(own).toEqual({ kind: "reachable" });
      expect(other).toEqual({ kind: "refused", status: 403, reason: "NoDivisionAccess" });
      const check = (division: number) =>
        checkPinnedDivision({ oauth }, { baseUrl: sim.url, accessToken, division, timeoutMs: 2_000 });
      expect([await check(ALICE.division), await check(42)]).toEqual(["reachable", "unreachable"]);
    });

    it("answers unknown for a token Exact refuses (401 says nothing about the division)", async () => {
      const oauth = new ExactOAuthClient();

      const answer = await oauth.divisionReachable(sim.url, "bogus-access-token", ALICE.division, 2_000);

      expect(answer).toMatchObject({ kind: "refused", status: 401 });
      expect(
        await checkPinnedDivision(
          { oauth },
          { baseUrl: sim.url, accessToken: "bogus-access-token", division: ALICE.division, timeoutMs: 2_000 },
        ),
      ).toBe("unknown");
    });
  });

  it.each<[string, DivisionOutcome, string]>([
    ["200", { kind: "reachable" }, "reachable"],
    ["403 NoDivisionAccess", { kind: "refused", status: 403, reason: "NoDivisionAccess" }, "unreachable"],
    ["403 without a Reason", { kind: "refused", status: 403 }, "unreachable"],
    ["403 BlockedUser", { kind: "refused", status: 403, reason: "BlockedUser" }, "unknown"],
    ["429 (the division's API budget spent)", { kind: "refused", status: 429 }, "rate_limited"],
    ["503", { kind: "unavailable", status: 503, detail: "HTTP 503" }, "unknown"],
    ["no answer", { kind: "unavailable", detail: "reset" }, "unknown"],
  ])("maps %s to %s", async (_case, outcome, expected) => {
    expect(await checkPinnedDivision({ oauth: answering(outcome) }, args)).toBe(expected);
  });

  it("answers unavailable when Exact cannot be reached", async () => {
    const answer = await new ExactOAuthClient().divisionReachable("http://127.0.0.1:9", "t", 1, 1_000);

    expect(answer).toMatchObject({ kind: "unavailable" });
  });
});
