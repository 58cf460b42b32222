import { describe, expect, it } from "vitest";
import { type CaseEvidence, checkInvariants, type FinalState } from "../campaign/invariants.js";

/** A clean case of two connections; `finals` decide what the history check sees. */
function evidence(finals: readonly FinalState[]): CaseEvidence {
  return {
    mode: "code",
    tokenCalls: [],
    logins: [],
    callStarts: [],
    returned: [],
    vends: [],
    unknownOutcomes: 0,
    probes: 0,
    lostAllowed: false,
    generations: { a: [1, 3], b: [1, 2] },
    statuses: ["ACTIVE"],
    loginSuccesses: 0,
    loginFailures: 0,
    leaks: [],
    finals,
    authorizedVends: [],
    connectRequests: [],
    accessChecks: [],
    refreshes: [],
    reportedVends: [],
    rejectedSecretCalls: [],
    loginStarts: [],
    pins: {},
    operatorPins: {},
    dailyCapRefusals: 0,
  };
}

function final(connectionId: string, unrecordedGenerations: number[]): FinalState {
  return {
    connectionId,
    status: "ACTIVE",
    refreshHash: `h-${connectionId}`,
    liveRefreshHash: `h-${connectionId}`,
    accessValidityMs: 1,
    leaseLive: false,
    heldUser: `user-${connectionId}`,
    expectedUser: `user-${connectionId}`,
    unrecordedGenerations,
  };
}

describe("the campaign's checker and the history", () => {
  it("names each connection's committed generations that have no history entry", () => {
    const violations = checkInvariants(evidence([final("a", [2, 3]), final("b", [])]), {
      loginDoor: false,
      baselineLogins: 0,
    });

    expect(violations).toEqual(["connection a: generation(s) 2, 3 committed without a history entry"]);
  });

  it("passes a case whose every generation is recorded", () => {
    expect(
      checkInvariants(evidence([final("a", []), final("b", [])]), { loginDoor: false, baselineLogins: 0 }),
    ).toEqual([]);
  });
});
