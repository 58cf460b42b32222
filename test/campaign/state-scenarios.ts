import { GetItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import type { AppState } from "../../lib/chain/app-states.js";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { appKey, connectionKey } from "../../lib/chain/table-definition.js";
import type { CaseRun, Door } from "./case-run.js";
import { expectStatus, scheduled, seed, toWindow, vend } from "./scenarios.js";

/**
 * Doors of the states around a chain: an operator's heal of a chain at REAUTH_REQUIRED, an item
 * written before incarnations, a BLOCKED user's re-check (issue 9), and a refresh during an
 * outage of the app (outage pacing, issue 9: one chain probes for all, the others hold back).
 */

/** The operator's `exact-broker heal --id`: also heals REAUTH_REQUIRED, forgetting the failures that stopped it. */
const operatorHeal = (run: CaseRun) =>
  run.invoke("competitor", (invocation) =>
    invocation.broker.heal.heal(run.connection.connectionId, { operator: true }),
  );

/**
 * S1. The operator's heal of a chain at REAUTH_REQUIRED: an operator's heal with a wrong password
 * in the secret was refused (LoginFailures.reauth: bad_credentials), the secret is fixed, and the
 * operator heals again. Should that heal not get through (the chain stays REAUTH_REQUIRED, or
 * goes back there), the operator runs it once more.
 */
export const operatorHealsReauth: Door = {
  name: "operator heal (REAUTH_REQUIRED)",
  mode: "code",
  async setup(run) {
    await seed(run);
    run.world.setPassword(run.connection, "pw-sEcReT-not-the-password-0123456789");
    await run.invoke("setup", (invocation) =>
      invocation.broker.heal.heal(run.connection.connectionId, { operator: true }),
    );
    await expectStatus(run, ChainStatus.ReauthRequired);
    run.world.setPassword(run.connection, undefined);
    // The refused login used its TOTP step; the operator's login gets a whole one.
    run.world.clock.alignToTotpStep();
  },
  act: (run, invocation) => invocation.broker.heal.heal(run.connection.connectionId, { operator: true }),
  compete: operatorHeal,
  async operatorStep(run, connection, item) {
    if (item.status !== ChainStatus.ReauthRequired) return false;
    await run.invoke("recovery", (invocation) =>
      invocation.broker.heal.heal(connection.connectionId, { operator: true }),
    );
    return true;
  },
};

/**
 * Rewrites the case's item as the broker wrote items before incarnations (test/chain/
 * incarnation.test.ts): no incarnation, tokens sealed in the old encryption context.
 */
async function writeTheOldWay(run: CaseRun): Promise<void> {
  const { cipher, dynamo, tableName } = run.world;
  const record = await run.item();
  const legacy = { connectionId: record.connectionId };
  const current = { ...legacy, incarnation: record.incarnation ?? "" };
  const access = await cipher.decrypt(record.accessCt ?? "", { ...current, kind: "access" });
  const refresh = await cipher.decrypt(record.refreshCt ?? "", { ...current, kind: "refresh" });
  await dynamo.send(
    new UpdateItemCommand({
      TableName: tableName,
      Key: marshall({ pk: connectionKey(record.connectionId) }),
      UpdateExpression: "SET accessCt = :a, refreshCt = :r REMOVE incarnation",
      ExpressionAttributeValues: marshall({
        ":a": await cipher.encrypt(access, { ...legacy, kind: "access" }),
        ":r": await cipher.encrypt(refresh, { ...legacy, kind: "refresh" }),
      }),
    }),
  );
  run.forgetItem();
}

/** S2. A vend of an item written before incarnations, in its window: the item adopts one (re-sealed), then the refresh. */
export const vendUpgradesLegacy: Door = {
  name: "vend (legacy item)",
  mode: "code",
  async setup(run) {
    await seed(run);
    await writeTheOldWay(run);
    await toWindow(run);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/**
 * S3. The re-check of a BLOCKED chain: its identity check was refused with 403 `Reason:
 * BlockedUser` (a scripted /current/Me answer); half an hour later the scheduled refresh checks
 * again, Exact accepts the user now. Its access token expired meanwhile, so the chain is
 * refreshed first (TokenProtocol.refresh on a BLOCKED chain), then checked.
 */
export const blockedRecheck: Door = {
  name: "scheduled refresh (BLOCKED re-check)",
  mode: "code",
  async setup(run) {
    run.world.sim.addScript({
      endpoint: "me",
      clientId: run.connection.clientId,
      status: 403,
      headers: { Reason: "BlockedUser" },
      json: { error: { code: "", message: { lang: "", value: "Forbidden" } } },
    });
    await run.invoke("setup", (invocation) => run.seed(invocation));
    await expectStatus(run, ChainStatus.Blocked);
    const item = await run.item();
    run.world.clock.advanceTo(item.dueAtMs ?? run.world.clock.now());
  },
  act: (_run, invocation) => invocation.broker.refresh.run(),
  compete: scheduled,
};

/**
 * Two chains of one app, in their windows; the peer's refresh got a 503, so the app is in an
 * outage and its next probe is 10 s away (app-states.ts).
 */
async function appInOutage(run: CaseRun): Promise<void> {
  await seed(run);
  const peer = await run.addPeer();
  await seed(run, peer);
  await toWindow(run);
  await toWindow(run, peer);
  run.world.sim.addFault({
    kind: "status",
    status: 503,
    endpoint: "token",
    clientId: run.connection.clientId,
    count: 1,
  });
  await run.invoke("setup", (invocation) => run.vend(invocation, 30, peer));
  const read = await run.world.dynamo.send(
    new GetItemCommand({
      TableName: run.world.tableName,
      Key: marshall({ pk: appKey(run.connection.clientId, run.world.sim.url) }),
      ConsistentRead: true,
    }),
  );
  const app = read.Item ? (unmarshall(read.Item) as AppState) : undefined;
  if (app?.outageSinceMs === undefined || app.nextProbeAtMs === undefined) {
    throw new Error(`${run.door.name} setup: the app is not in an outage`);
  }
  run.scratch.atMs = app.nextProbeAtMs;
}

/** S4. A vend of the app's other chain while the outage's next probe is not due: it holds back, no token call. */
export const vendHeldByOutage: Door = {
  name: "vend (app outage: held back)",
  mode: "code",
  setup: appInOutage,
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/** S5. The same once the probe is due: this chain claims it and asks Exact for the app; its success ends the outage. */
export const vendProbesForApp: Door = {
  name: "vend (app outage: probes for the app)",
  mode: "code",
  async setup(run) {
    await appInOutage(run);
    run.world.clock.advanceTo((run.scratch.atMs ?? 0) + 1);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};
