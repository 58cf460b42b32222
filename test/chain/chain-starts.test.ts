import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { TotpStepClaims } from "../../lib/chain/totp-step-claims.js";
import { ExactUnavailable } from "../../lib/errors.js";
import type { LoginDriver } from "../../lib/exact/login/login-driver.js";
import { type Fixture, startFixture } from "../support/fixture.js";

/** Heals run explicitly in these tests. */
const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

/** Marks the chain BROKEN the way a probe would, without spending Exact calls. */
async function markBroken(fx: Fixture, connectionId = fx.conn.connectionId): Promise<void> {
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

function successfulLogins(fx: Fixture, username = fx.conn.username): number {
  return fx.stack.sim.stats().logins[username]?.success ?? 0;
}

describe("chain starts persist Exact's answer before the identity check", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("a heal whose /current/Me fails keeps the new chain (VERIFYING), counts the login, and finishes later without a second login", async () => {
    fx = await startFixture();
    await markBroken(fx);
    fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "me", count: 3 });

    const first = await fx.broker().heal.heal(fx.conn.connectionId);

    expect(first).toMatchObject({ kind: "failed", errorType: "ExactUnavailable" });
    const stored = await fx.record();
    expect(stored).toMatchObject({ status: ChainStatus.Verifying, generation: 2 });
    expect(stored.refreshHash).toBe(fx.chainStats().liveRefreshHash);
    expect(stored.leaseOwner).toBeUndefined();
    expect(stored.loginFailures?.errorAtMs).toHaveLength(1);
    await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 0)).rejects.toThrow(ExactUnavailable);

    fx.clock.advance(30);
    const again = await fx.broker().heal.heal(fx.conn.connectionId);
    expect(again).toMatchObject({ kind: "failed", errorType: "ExactUnavailable" });
    fx.stack.sim.clearFaults();
    fx.clock.advance(60);
    const answer = await fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30);

    expect(answer.generation).toBe(2);
    expect(await fx.record()).toMatchObject({ status: ChainStatus.Active, exactUserName: fx.conn.username });
    expect(successfulLogins(fx)).toBe(1);
    expect(fx.chainStats().chainsStarted).toBe(2);
  });

  it("a seed whose /current/Me fails keeps the new chain (VERIFYING); the scheduled refresh finishes the check", async () => {
    fx = await startFixture({ seed: false });
    fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "me", count: 1 });
    const code = fx.stack.sim.authorize({
      clientId: fx.conn.clientId,
      username: fx.conn.username,
      redirectUri: fx.conn.redirectUri,
    });

    await expect(fx.broker().onboarding.seed(fx.conn.connectionId, code)).rejects.toThrow(ExactUnavailable);

    const stored = await fx.record();
    expect(stored).toMatchObject({ status: ChainStatus.Verifying, generation: 1 });
    expect(stored.refreshHash).toBe(fx.chainStats().liveRefreshHash);
    fx.clock.advance(10);
    const run = await fx.broker(NO_HEAL).refresh.run();
    expect(run.outcomes.verified).toBe(1);
    expect(await fx.record()).toMatchObject({
      status: ChainStatus.Active,
      generation: 1,
      exactUserName: fx.conn.username,
    });
    expect(fx.chainStats().chainsStarted).toBe(1);
  });

  it("an implicit login whose /current/Me fails is stored unserved, and checked when Me is back (no second login)", async () => {
    fx = await startFixture({ mode: "implicit" });
    fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "me", count: 1 });

    const first = await fx.broker().heal.heal(fx.conn.connectionId);
    expect(first).toMatchObject({ kind: "failed", errorType: "ExactUnavailable" });
    expect(await fx.record()).toMatchObject({ status: ChainStatus.Verifying, generation: 1 });
    fx.clock.advance(10);
    const answer = await fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30);

    expect(answer.generation).toBe(1);
    expect(await fx.record()).toMatchObject({ status: ChainStatus.Active, exactUserName: fx.conn.username });
    expect(successfulLogins(fx)).toBe(1);
  });

  it("an implicit login's token that expired before its check is dropped; the next login replaces it", async () => {
    fx = await startFixture({ mode: "implicit" });
    fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "me", probability: 1 });
    await fx.broker().heal.heal(fx.conn.connectionId);
    fx.clock.advance(601);
    fx.stack.sim.clearFaults();

    const answer = await fx.broker().vend.vend(fx.conn.connectionId, 30);

    expect(answer.generation).toBe(3);
    expect(await fx.record()).toMatchObject({ status: ChainStatus.Active });
    expect(successfulLogins(fx)).toBe(2);
  });

  it("a login that leaves no time for the code exchange sends no exchange and counts as a failed login", async () => {
    fx = await startFixture();
    await markBroken(fx);
    const config = fx.broker().config;
    const slowDriver: LoginDriver = {
      async login(request) {
        // The login pages took the whole budget the lease left them.
        fx.clock.advance(request.timeoutMs / 1000);
        await request.claimTotpStep(1);
        return {
          kind: "code",
          code: fx.stack.sim.authorize({
            clientId: fx.conn.clientId,
            username: fx.conn.username,
            redirectUri: fx.conn.redirectUri,
          }),
          totpStep: 1,
        };
      },
    };

    const result = await fx.broker({ login: slowDriver }).heal.heal(fx.conn.connectionId);

    expect(result).toMatchObject({ kind: "failed", errorType: "ChainBusy" });
    expect(fx.chainStats().tokenRequests.code_exchanged).toBe(1);
    expect(await fx.record()).toMatchObject({ status: ChainStatus.Broken, lastLoginFailure: "login_failed" });
    expect((await fx.record()).loginFailures?.errorAtMs).toHaveLength(1);
    expect((await fx.record()).leaseOwner).toBeUndefined();
    expect(config.loginLeaseMs).toBeGreaterThan(config.httpTimeoutMs);
  });
});

describe("TOTP steps are claimed per Exact user", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("lets two connections of one Exact user (two apps) heal within one 30 s step without a refused code", async () => {
    fx = await startFixture({ seed: false });
    const username = "shared-user@example.com";
    const a = await fx.stack.addConnection("shared-a", { username, clientId: "app-shared-a" });
    const b = await fx.stack.addConnection("shared-b", { username, clientId: "app-shared-b" });
    for (const conn of [a, b]) {
      const code = fx.stack.sim.authorize({
        clientId: conn.clientId,
        username,
        redirectUri: conn.redirectUri,
      });
      await fx.broker().onboarding.seed(conn.connectionId, code);
      await markBroken(fx, conn.connectionId);
    }

    const healedA = await fx.broker().heal.heal(a.connectionId);
    const healedB = await fx.broker().heal.heal(b.connectionId);

    expect(healedA.kind).toBe("healed");
    expect(healedB.kind).toBe("healed");
    const logins = fx.stack.sim.stats().logins[username];
    expect(logins).toMatchObject({ success: 2, bad_totp: 0, totp_reused: 0 });
    const claims = new TotpStepClaims({ tableName: fx.stack.tableName, client: fx.stack.dynamo.client });
    expect(await claims.lastStep(username)).toBeGreaterThan(0);
  });
});
