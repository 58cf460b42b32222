import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeasePurpose } from "../../lib/chain/chain-record.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { LEAK_PATTERN } from "../support/leak-guard.js";
import { CaseRun, type Door, type Invocation } from "./case-run.js";
import { type CaseEvidence, checkInvariants } from "./invariants.js";
import { vendRefreshes } from "./scenarios.js";
import { World } from "./world.js";

/**
 * The campaign's checker has teeth: doors that break an invariant on purpose, outside the engine,
 * are caught. Without these, a campaign whose checks had gone blind would pass just the same.
 */

/** A refresh straight at Exact through the invocation's tapped I/O, without the chain's lease. */
async function refreshWithoutLease(run: CaseRun, invocation: Invocation): Promise<void> {
  const { cipher, secrets, oauth } = invocation.broker.deps;
  const item = await run.item();
  const refreshToken = await cipher.decrypt(item.refreshCt ?? "", {
    connectionId: item.connectionId,
    kind: "refresh",
    ...(item.incarnation !== undefined ? { incarnation: item.incarnation } : {}),
  });
  const { clientSecret } = await secrets.get(item.secretId);
  await oauth.refresh(item.baseUrl, { clientId: item.clientId, clientSecret }, refreshToken, 5_000);
}

function rogue(name: string, act: Door["act"]): Door {
  return { ...vendRefreshes, name, act };
}

describe("the campaign's checker", () => {
  let world: World;
  beforeAll(async () => {
    world = await World.start(LEAK_PATTERN);
  });
  afterAll(() => world.close());

  // Judged as the vend door's cases are: its clean run logs in nowhere.
  const run = (door: Door) =>
    CaseRun.execute(world, door, door.name.replace(/\W+/g, "-"), undefined, {
      loginDoor: false,
      baselineLogins: 0,
    });

  it("catches a token call made without the lease, whose answer nobody persists", async () => {
    const result = await run(rogue("rogue refresh", refreshWithoutLease));

    expect(result.violations).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/started a token call without holding the live lease \(lease: none\)/),
        expect.stringMatching(/received Exact's live chain and returned without persisting it/),
        "the chain went BROKEN although no answer was lost in transit",
      ]),
    );
  });

  it("catches two token calls in flight at once", async () => {
    const result = await run(
      rogue("rogue pair", async (r) => {
        await Promise.all([
          r.invoke("competitor", (invocation) => refreshWithoutLease(r, invocation)),
          r.invoke("competitor", (invocation) => refreshWithoutLease(r, invocation)),
        ]);
      }),
    );

    expect(result.violations).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/started a token call while .*'s token call was in flight/),
      ]),
    );
  });

  it("catches an invocation that returns holding its lease", async () => {
    const result = await run(
      rogue("rogue holder", async (r, invocation) => {
        const { store, config } = invocation.broker.deps;
        await store.acquire({
          record: await r.item(),
          owner: invocation.tap.owner,
          purpose: LeasePurpose.Refresh,
          leaseMs: config.leaseMs,
        });
      }),
    );

    expect(result.violations).toEqual(
      expect.arrayContaining([expect.stringMatching(/door-\d+ returned and left its lease behind/)]),
    );
  });

  it("catches a generation that goes back", async () => {
    const result = await run(
      rogue("rogue writer", async (r, invocation) => {
        await invocation.dynamo.send(
          new UpdateItemCommand({
            TableName: world.stack.tableName,
            Key: marshall({ pk: connectionKey(r.connection.connectionId) }),
            UpdateExpression: "SET generation = generation - :one",
            ExpressionAttributeValues: marshall({ ":one": 1 }),
          }),
        );
      }),
    );

    expect(result.violations).toEqual(
      expect.arrayContaining([expect.stringMatching(/the generation went back from 1 to 0/)]),
    );
  });

  it("judges what it is shown: probes, the login budget, vend validity, leaks, a live lease", () => {
    const evidence: CaseEvidence = {
      mode: "code",
      tokenCalls: [
        { owner: "a", startMs: 0, untilMs: 8_000 },
        { owner: "b", startMs: 5_000, untilMs: 5_000 + 1 },
      ],
      logins: [],
      callStarts: [],
      returned: [],
      vends: [{ owner: "v", minValiditySeconds: 30, validityMs: 29_999 }],
      unknownOutcomes: 1,
      probes: 2,
      lostAllowed: true,
      generations: [1, 2, 2],
      statuses: ["ACTIVE"],
      loginSuccesses: 0,
      loginFailures: 4,
      leaks: ["a's log line"],
      final: {
        status: "ACTIVE",
        refreshHash: "h",
        liveRefreshHash: "h",
        accessValidityMs: 1,
        leaseLive: true,
      },
    };

    expect(checkInvariants(evidence, { loginDoor: false, baselineLogins: 0 })).toEqual([
      "token calls of a [0, 8000] and b [5000, 5001] overlap",
      "2 probes for 1 unknown outcome(s)",
      "4 failed logins; the budget is 3 an hour",
      "a lease is still live after recovery",
      "v vended a token valid 29999 ms; it asked for 30 s",
      "a's log line carried a token or secret",
    ]);
  });
});
