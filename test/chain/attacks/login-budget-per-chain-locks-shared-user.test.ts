import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { connectionKey } from "../../../lib/chain/table-definition.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

async function markBroken(fx: Fixture, connectionId: string): Promise<void> {
  await fx.stack.dynamo.client.send(
    new UpdateItemCommand({
      TableName: fx.stack.tableName,
      Key: marshall({ pk: connectionKey(connectionId) }),
      UpdateExpression: "SET #status = :broken, statusReason = :reason",
      ExpressionAttributeNames: { "#status": "status" },
      ExpressionAttributeValues: marshall({ ":broken": ChainStatus.Broken, ":reason": "old_token" }),
    }),
  );
}

/**
 * The login budget (loginFailures, LOGIN_FAILURES_PER_HOUR = 3) and the "bad TOTP twice"
 * stop (lastLoginFailure) live on the CHAIN item, but Exact locks the USER (the simulator: the
 * 5th failure in a row). TOTP steps are claimed per user (totp-step-claims.ts); failures are not.
 * One Exact user behind three apps (three connections) whose authenticator was reset: every
 * connection spends its own two attempts and the account is locked, for the broker and the person.
 */
describe("failed logins are budgeted per Exact user, as Exact locks them", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("three connections of one Exact user with a stale TOTP secret do not lock the account", async () => {
    fx = await startFixture({ seed: false });
    const username = "shared@example.com";
    const conns = [];
    for (const n of [1, 2, 3]) {
      const c = await fx.stack.addConnection(`shared-${n}`, { username, clientId: `app-${n}` });
      await fx.stack.seed(c);
      conns.push(c);
    }
    // The user re-enrolled the authenticator: every connection's TOTP secret is now wrong.
    for (const c of conns) {
      fx.stack.writeSecret(c.secretId, {
        clientSecret: `cs-sEcReT-${c.clientId}-0123456789`,
        username,
        password: `pw-sEcReT-${username}-0123456789`,
        totpSecret: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
      });
      await markBroken(fx, c.connectionId);
    }
    for (let round = 0; round < 2; round++) {
      for (const c of conns) {
        await fx.broker().heal.heal(c.connectionId);
      }
      fx.clock.advance(600); // past every backoff, well inside the hour
    }
    const stats = fx.stack.sim.stats().logins[username];
    const statuses = await Promise.all(
      conns.map(async (c) => (await fx.stack.store().get(c.connectionId))?.status),
    );
    expect(
      { badTotp: stats?.bad_totp ?? 0, locked: stats?.locked ?? 0 },
      `statuses ${statuses.join(", ")}`,
    ).toMatchObject({ locked: 0 });
    expect(stats?.bad_totp ?? 0, "credential failures Exact saw for one user").toBeLessThan(5);
  });
});
