import { DeleteItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../../lib/broker.js";
import { type AccessCheck, AccessCheckOutcome } from "../../lib/chain/access-check.js";
import { ChainStatus, LeasePurpose } from "../../lib/chain/chain-record.js";
import { REDISPATCH_AFTER_MS } from "../../lib/chain/refresh-dispatch.js";
import { connectionKey, nonceKey } from "../../lib/chain/table-definition.js";
import type { VendAnswer } from "../../lib/chain/token-cache.js";
import { Throttled } from "../../lib/errors.js";
import type { VendEvent } from "../../lib/handlers/events.js";
import { createTokenVendHandler } from "../../lib/handlers/token-vend-handler.js";
import { NonceMarker, NonceStore } from "../../lib/onboarding/nonce-store.js";
import { type MotoIdentities, startMotoIdentities } from "../auth/moto-identities.js";
import { LEAK_PATTERN } from "../support/leak-guard.js";
import { describeWithMoto } from "../support/tool-gate.js";
import { vendHeldByRejection } from "./app-rejection-scenarios.js";
import {
  grantedCallerDoor,
  revokedGrantDoor,
  ungrantedCallerDoor,
  type VendHandlerFactory,
} from "./authorization-scenarios.js";
import { CaseRun, type Door, type Invocation } from "./case-run.js";
import { connectButton, connectPage, heldLink } from "./connect-scenarios.js";
import { Fault, faultsFor } from "./fault-plan.js";
import { type CaseEvidence, checkInvariants, type DueChain } from "./invariants.js";
import { dispatchDoor, workerHot } from "./queue-scenarios.js";
import {
  consumerHoldsCurrent,
  REVOKED_AFTER_SECONDS,
  reportedGeneration,
  vendRejectedAccepted,
  vendRejectedRevoked,
} from "./rejected-scenarios.js";
import { seed, vendRefreshes } from "./scenarios.js";
import { blockedRecheck } from "./state-scenarios.js";
import { healChecksDivision, vendAtDailyCap } from "./user-state-scenarios.js";
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
  const clientSecret = await secrets.clientSecret(item.secretId);
  await oauth.refresh(item.baseUrl, { clientId: item.clientId, clientSecret }, refreshToken, 5_000);
}

/** Claims one of the user's link's single-use markers behind the flow's back, through the invocation's I/O. */
async function claimLink(run: CaseRun, invocation: Invocation, marker: NonceMarker): Promise<void> {
  const nonces = new NonceStore({ tableName: run.world.tableName, client: invocation.dynamo });
  await nonces.claim({
    nonce: heldLink(run).searchParams.get("n") ?? "",
    marker,
    connectionId: run.connection.connectionId,
    validUntilEpochSec: Math.floor(run.world.clock.now() / 1000) + 900,
    nowMs: run.world.clock.now(),
  });
}

/** Writes the item's `accessCheck` behind the engine's back (undefined: removes it), through the invocation's I/O. */
async function forgeAccessCheck(
  run: CaseRun,
  invocation: Invocation,
  check: AccessCheck | undefined,
): Promise<void> {
  await invocation.dynamo.send(
    new UpdateItemCommand({
      TableName: run.world.tableName,
      Key: marshall({ pk: connectionKey(run.connection.connectionId) }),
      ...(check
        ? {
            UpdateExpression: "SET accessCheck = :check",
            ExpressionAttributeValues: marshall({ ":check": check }),
          }
        : { UpdateExpression: "REMOVE accessCheck" }),
    }),
  );
}

/** The vend reporting the consumer's generation refused, as the rejected-generation doors make it. */
const reportRefused = (run: CaseRun, invocation: Invocation, minValiditySeconds: number) =>
  run.vendReporting(invocation, minValiditySeconds, reportedGeneration(run));

/** Runs a rogue door's clean case, judged as the vend door's cases are: its clean run logs in nowhere. */
function judge(world: World, door: Door) {
  return CaseRun.execute(world, door, door.name.replace(/\W+/g, "-"), undefined, {
    loginDoor: false,
    baselineLogins: 0,
  });
}

function rogue(name: string, act: Door["act"], setup: Door["setup"] = vendRefreshes.setup): Door {
  return { ...vendRefreshes, name, act, setup };
}

describe("the campaign's checker", () => {
  let world: World;
  beforeAll(async () => {
    world = await World.start(LEAK_PATTERN);
  });
  afterAll(() => world.close());

  const run = (door: Door) => judge(world, door);

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
            TableName: world.tableName,
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

  it("judges every connection of a case: an identity that lands on the wrong one is caught", async () => {
    const result = await run(
      rogue(
        "rogue landing",
        async (r, invocation) => {
          const [own, peer] = r.connections;
          const item = await r.item(own);
          await invocation.dynamo.send(
            new UpdateItemCommand({
              TableName: world.tableName,
              Key: marshall({ pk: connectionKey(peer?.connectionId ?? "") }),
              UpdateExpression: "SET exactUserId = :id, exactUserName = :name",
              ExpressionAttributeValues: marshall({ ":id": item.exactUserId, ":name": item.exactUserName }),
            }),
          );
        },
        async (r) => {
          await seed(r);
          await seed(r, await r.addPeer());
        },
      ),
    );

    expect(result.violations).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^connection c\d+: after recovery the chain is Exact user user-c\d+@example.com's, not user-c\d+@example.com's$/,
        ),
        expect.stringMatching(/^connections c\d+ and c\d+ both hold Exact user user-c\d+@example.com$/),
      ]),
    );
  });

  it("catches a confirmation page that spends the link (the user's press then says used)", async () => {
    const result = await run({
      ...connectPage,
      name: "rogue page",
      async act(r, invocation) {
        await connectPage.act(r, invocation);
        await claimLink(r, invocation, NonceMarker.Opened);
      },
    });

    expect(result.violations).toEqual([
      expect.stringMatching(/door-\d+'s GET \/start of link 1 wrote: dynamo:PutItemCommand$/),
    ]);
  });

  it("catches a link spent twice: a second press that gets a state of its own", async () => {
    const result = await run({
      ...connectButton,
      name: "rogue presses",
      async act(r, invocation) {
        await connectButton.act(r, invocation);
        await invocation.dynamo.send(
          new DeleteItemCommand({
            TableName: world.tableName,
            Key: marshall({ pk: nonceKey(`${heldLink(r).searchParams.get("n")}#${NonceMarker.Opened}`) }),
          }),
        );
        await r.invoke("competitor", (competitor) => connectButton.act(r, competitor));
      },
    });

    expect(result.violations).toEqual([
      expect.stringMatching(/^link 1 was spent 2 times: states went to \S+\/door-\d+, \S+\/competitor-\d+$/),
    ]);
  });

  it("catches a press that leaves the user no clear way on: its state is refused at the callback", async () => {
    const result = await run({
      ...connectButton,
      name: "rogue press",
      async act(r, invocation) {
        await connectButton.act(r, invocation);
        await claimLink(r, invocation, NonceMarker.Completed);
      },
    });

    expect(result.violations).toEqual([
      expect.stringMatching(/recovery-\d+: the user's way on, GET \/callback of link 1, answered used$/),
    ]);
  });

  it("catches a reported token checked twice in one generation (a check whose record is forgotten)", async () => {
    const result = await run({
      ...vendRejectedAccepted,
      name: "rogue checks",
      async act(r, invocation) {
        await reportRefused(r, invocation, 30);
        await forgeAccessCheck(r, invocation, undefined);
        return reportRefused(r, invocation, 30);
      },
    });

    expect(result.violations).toEqual([
      expect.stringMatching(
        /^connection c\d+'s generation 1 was checked with \/current\/Me 2 times: \S+\/door-\d+, \S+\/door-\d+$/,
      ),
    ]);
  });

  it("catches a reported token served again after /current/Me refused it, or with no check that accepted it", async () => {
    // Exact revoked the token; its refresh window is still shut, so the refused token stays current.
    const revokedEarly: Door["setup"] = async (r) => {
      r.world.sim.setVariants({ accessTokenRevokedAfterSeconds: REVOKED_AFTER_SECONDS });
      await seed(r);
      r.world.clock.advanceMs((REVOKED_AFTER_SECONDS + 40) * 1000);
      await consumerHoldsCurrent(r);
    };
    const accepted = (r: CaseRun): AccessCheck => ({
      generation: reportedGeneration(r),
      outcome: AccessCheckOutcome.Accepted,
      checkedAtMs: r.world.clock.now(),
    });

    const afterRefusal = await run({
      ...vendRejectedRevoked,
      name: "rogue serves refused",
      setup: revokedEarly,
      async act(r, invocation) {
        await reportRefused(r, invocation, 30).catch(() => undefined);
        await forgeAccessCheck(r, invocation, accepted(r));
        return reportRefused(r, invocation, 30);
      },
    });
    const unchecked = await run({
      ...vendRejectedRevoked,
      name: "rogue serves unchecked",
      setup: revokedEarly,
      async act(r, invocation) {
        await forgeAccessCheck(r, invocation, accepted(r));
        return reportRefused(r, invocation, 30);
      },
    });

    expect(afterRefusal.violations).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /door-\d+ reported generation 1 refused and was served its token, which \/current\/Me refused$/,
        ),
      ]),
    );
    expect(unchecked.violations).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /door-\d+ reported generation 1 refused and was served its token, which no \/current\/Me check accepted$/,
        ),
      ]),
    );
  });

  it("catches a reported generation refreshed twice (once behind the lease's back)", async () => {
    const result = await run({
      ...vendRejectedRevoked,
      name: "rogue refreshes",
      async act(r, invocation) {
        await refreshWithoutLease(r, invocation);
        return reportRefused(r, invocation, 20);
      },
    });

    expect(result.violations).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^connection c\d+'s reported generation 1 was refreshed 2 times: \S+\/door-\d+, \S+\/door-\d+$/,
        ),
      ]),
    );
  });

  it("catches a reported token answered with an untyped error, or one without retryAfterSeconds", async () => {
    const answering = (error: Error): Door => ({
      ...vendRejectedAccepted,
      name: `rogue ${error.name}`,
      act: (r, invocation) =>
        r.vendReporting(invocation, 30, reportedGeneration(r), async () => {
          await invocation.broker.vend.vend(r.connection.connectionId, 30, {
            rejectedGeneration: reportedGeneration(r),
          });
          throw error;
        }),
    });

    const untyped = await run(answering(new TypeError("fetch failed")));
    const noHint = await run(answering(new Throttled("come back later")));

    expect(untyped.violations).toEqual([
      expect.stringMatching(/door-\d+ reported generation 1 refused and got InternalError$/),
    ]);
    expect(noHint.violations).toEqual([
      expect.stringMatching(
        /door-\d+ reported generation 1 refused and got Throttled without retryAfterSeconds$/,
      ),
    ]);
  });

  it("catches a rejected app's secret sent again before the rejection's probe is due (a held chain that calls)", async () => {
    const result = await run(rogue("rogue rejected", refreshWithoutLease, vendHeldByRejection.setup));

    expect(result.violations).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /door-\d+ sent connection c\d+'s rejected client secret [\d.]+ s after the rejection, not as the app's paced probe$/,
        ),
      ]),
    );
  });

  it("catches a login for a user BLOCKED with its chain (a heal let in behind the status's back)", async () => {
    const result = await run(
      rogue(
        "rogue blocked login",
        async (r, invocation) => {
          await invocation.dynamo.send(
            new UpdateItemCommand({
              TableName: world.tableName,
              Key: marshall({ pk: connectionKey(r.connection.connectionId) }),
              UpdateExpression: "SET #status = :broken",
              ExpressionAttributeNames: { "#status": "status" },
              ExpressionAttributeValues: marshall({ ":broken": ChainStatus.Broken }),
            }),
          );
          return invocation.broker.heal.heal(r.connection.connectionId);
        },
        blockedRecheck.setup,
      ),
    );

    expect(result.violations).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /door-\d+ logged in for connection c\d+, BLOCKED with its chain \(no login can fix a blocked user\)$/,
        ),
      ]),
    );
  });

  it("catches a heal that moves the pinned division to the one Exact's Me shows", async () => {
    const result = await run({
      ...healChecksDivision,
      name: "rogue repin",
      async act(r, invocation) {
        await healChecksDivision.act(r, invocation);
        await invocation.dynamo.send(
          new UpdateItemCommand({
            TableName: world.tableName,
            Key: marshall({ pk: connectionKey(r.connection.connectionId) }),
            UpdateExpression: "SET pinnedDivision = :moved, division = :moved",
            ExpressionAttributeValues: marshall({ ":moved": 777777 }),
          }),
        );
      },
    });

    expect(result.violations).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^connection c\d+'s pinned division went from 123456 to 777777, which no operator pinned$/,
        ),
      ]),
    );
  });

  it("catches a token call past the daily cap (Exact's cap refuses it)", async () => {
    const result = await run(rogue("rogue past the cap", refreshWithoutLease, vendAtDailyCap.setup));

    expect(result.violations).toEqual(
      expect.arrayContaining(["Exact's daily token-call cap refused 1 call(s): the broker sent past it"]),
    );
  });

  it("catches a chain claimed without a message on its way (a claim before the send, whose send never came)", async () => {
    const result = await run({
      ...dispatchDoor,
      name: "rogue claim",
      async act(r, invocation) {
        const hot = r.queue.dueChains.find(
          (c) => c.connectionId === r.connections[1]?.connectionId,
        ) as DueChain;
        await invocation.broker.deps.store.unleased.claimDue(
          hot.connectionId,
          hot.dueAtMs,
          hot.dueAtMs + REDISPATCH_AFTER_MS,
        );
      },
    });

    // Claimed until its token had expired, the hot chain was refreshed only then.
    expect(result.violations).toEqual([
      expect.stringMatching(
        /door-\d+ claimed connection c\d+ \(due moved to \d+\) without a message it had queued$/,
      ),
      expect.stringMatching(/^hot connection c\d+ was worked on \d+ s after it was due, \d+ s too late$/),
    ]);
  });

  it("catches a chain queued before it is due, its message delivered early", async () => {
    const result = await run({
      ...dispatchDoor,
      name: "rogue early",
      async act(r, invocation) {
        await dispatchDoor.act(r, invocation);
        const later = r.queue.dueChains.find(
          (c) => c.connectionId === r.connections[2]?.connectionId,
        ) as DueChain;
        await invocation.refreshQueue.send([
          {
            connectionId: later.connectionId,
            dueAtMs: later.dueAtMs,
            redispatchAtMs: later.dueAtMs + REDISPATCH_AFTER_MS,
            delaySeconds: 0,
          },
        ]);
      },
    });

    expect(result.violations).toEqual([
      expect.stringMatching(/door-\d+ queued connection c\d+ 150 s before it was due$/),
      expect.stringMatching(/door-\d+'s message for connection c\d+ is delivered 150 s before it is due$/),
    ]);
  });

  it("catches a hot chain left past its token's expiry (a worker that drops its message)", async () => {
    const result = await run({ ...workerHot, name: "rogue drop", act: async () => undefined });

    expect(result.violations).toEqual([
      expect.stringMatching(/^hot connection c\d+ was worked on \d+ s after it was due, \d+ s too late$/),
    ]);
  });

  it("catches a queued generation refreshed twice (a duplicate delivery worked behind the lease's back)", async () => {
    const result = await run({
      ...workerHot,
      name: "rogue duplicate",
      async act(r, invocation) {
        await refreshWithoutLease(r, invocation);
        return workerHot.act(r, invocation);
      },
    });

    expect(result.violations).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^queued connection c\d+'s generation 1 was refreshed 2 times: \S+\/door-\d+, \S+\/door-\d+$/,
        ),
      ]),
    );
  });

  it("loses answers where the other side acts first: Exact's calls, DynamoDB's writes, the queue's send", () => {
    for (const name of [
      "queue:send",
      "exact:token",
      "login:POST b2c/SelfAsserted",
      "dynamo:UpdateItemCommand",
      "dynamo:PutItemCommand",
      "dynamo:DeleteItemCommand",
    ]) {
      expect(faultsFor(name), name).toContain(Fault.Lost);
    }
    for (const name of [
      "dynamo:GetItemCommand",
      "dynamo:QueryCommand",
      "cipher:decrypt",
      "secrets:clientSecret",
      "secrets:loginCredentials",
      "events:publish",
      "trigger:heal",
      "sts:GetCallerIdentity",
    ]) {
      expect(faultsFor(name), name).not.toContain(Fault.Lost);
    }
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
      generations: { c1: [1, 2, 2] },
      statuses: ["ACTIVE"],
      loginSuccesses: 0,
      loginFailures: 4,
      leaks: ["a's log line"],
      finals: [
        {
          connectionId: "c1",
          status: "ACTIVE",
          refreshHash: "h",
          liveRefreshHash: "h",
          accessValidityMs: 1,
          leaseLive: true,
          heldUser: "u",
          expectedUser: "u",
        },
      ],
      authorizedVends: [],
      connectRequests: [],
      accessChecks: [],
      refreshes: [],
      reportedVends: [],
      rejectedSecretCalls: [],
      loginStarts: [],
      pins: { c1: [123456, undefined, 123456] },
      operatorPins: {},
      dailyCapRefusals: 0,
    };

    expect(checkInvariants(evidence, { loginDoor: false, baselineLogins: 0 })).toEqual([
      "token calls of a [0, 8000] and b [5000, 5001] overlap",
      "2 probes for 1 unknown outcome(s)",
      "4 failed logins; the budget is 3 an hour",
      "a lease is still live after recovery",
      "v vended a token valid 29999 ms; it asked for 30 s",
      "a's log line carried a token or secret",
      "connection c1's pinned division went from 123456 to none, which no operator pinned",
    ]);
  });
});

describeWithMoto("the campaign's checker, at token-vend's authorization", () => {
  let world: World;
  let ids: MotoIdentities;
  beforeAll(async () => {
    world = await World.start(LEAK_PATTERN);
    ids = await startMotoIdentities();
  }, 60_000);
  afterAll(async () => {
    await world?.close();
    await ids?.moto.close();
  });
  const run = (door: Door) => judge(world, door);

  /** token-vend as deployed, with `onError` in place of a typed refusal. */
  const edgeThat =
    (onError: (error: Error, broker: Broker, event: VendEvent) => Promise<VendAnswer>): VendHandlerFactory =>
    (broker, logger) => {
      const real = createTokenVendHandler(broker, logger);
      return (event, context) => real(event, context).catch((error: Error) => onError(error, broker, event));
    };

  it("catches chain work and a token for a caller its authorization refused (a handler that fails open)", async () => {
    const failOpen = edgeThat((_error, broker, event) => broker.vend.vend(event.connectionId, 30));
    const result = await run({ ...ungrantedCallerDoor(ids, { handler: failOpen }), name: "rogue fail-open" });

    expect(result.violations).toEqual([
      expect.stringMatching(
        /door-\d+ made dynamo:GetItemCommand, cipher:decrypt, dynamo:UpdateItemCommand for a caller not yet verified and granted$/,
      ),
      expect.stringMatching(/door-\d+ served a token to a caller its authorization did not grant$/),
    ]);
  });

  it("catches AccessDenied for the broker's fault, and an error outside the contract", async () => {
    // Nothing listens on the discard port: STS cannot be reached, the broker's trouble.
    const unreachable = "http://127.0.0.1:9";
    const blameTheCaller = edgeThat(async (error) => {
      throw Object.assign(new Error(error.message), { name: "AccessDenied" });
    });
    const untyped = edgeThat(async () => {
      throw new TypeError("fetch failed");
    });

    const blamed = await run({
      ...grantedCallerDoor(ids, { stsEndpoint: unreachable, handler: blameTheCaller }),
      name: "rogue blame",
    });
    const leaked = await run({
      ...grantedCallerDoor(ids, { stsEndpoint: unreachable, handler: untyped }),
      name: "rogue untyped",
    });

    expect(blamed.violations).toEqual([
      expect.stringMatching(
        /door-\d+ answered AccessDenied to a verified, granted caller: the fault was the broker's$/,
      ),
    ]);
    expect(leaked.violations).toEqual([
      expect.stringMatching(/door-\d+ answered TypeError, not a typed error$/),
    ]);
  });

  it("catches a revoked grant served from a cache past its minute (a container whose clock stands still)", async () => {
    const standingStill = (r: CaseRun) => {
      const startedAtMs = r.world.clock.now();
      return () => startedAtMs;
    };
    const result = await run({
      ...revokedGrantDoor(ids, { authorizerClock: standingStill }),
      name: "rogue cache",
    });

    expect(result.violations).toEqual([
      expect.stringMatching(/door-\d+ granted a grant revoked 61 s before, from a cache past its minute$/),
    ]);
  });
});
