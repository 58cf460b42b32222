import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { connectionKey } from "../../../lib/chain/table-definition.js";
import { TotpStepClaims } from "../../../lib/chain/totp-step-claims.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

/**
 * The per-user login budget (3 failed logins per Exact user per rolling hour, README "When a chain
 * breaks") is read ONCE, in LoginProtocol.run (`totpClaims.read(secret.username)`), before the
 * driver waits for and claims a TOTP step, and is not looked at again before the code is sent.
 * The claims serialise logins of one user onto successive 30 s steps precisely when several run
 * at once, so a login that had to wait one or two steps sends its password and code after the
 * logins ahead of it failed, on a budget (and a "bad TOTP twice, by any connection" view) read
 * before they did.
 *
 * Here: five connections of one Exact user (five apps) whose TOTP secret went stale. Two failed
 * logins earlier in the hour (the second one stops its chain: bad TOTP twice). Then three heals
 * run together, as the scheduled run triggers fallback-login for every BROKEN connection in the
 * same minute: each reads 2 failures (< 3), they queue on steps S, S+1, S+2, and each sends its
 * code. Exact sees five failures in a row and locks the account, for the broker and the person.
 * (The concurrency is replayed in order: each heal's first claim lets the next one run to its end.)
 */
class ClaimsWithMeanwhile extends TotpStepClaims {
  #fired = false;
  constructor(
    options: ConstructorParameters<typeof TotpStepClaims>[0],
    private readonly meanwhile: () => Promise<unknown>,
  ) {
    super(options);
  }

  override async claim(args: Parameters<TotpStepClaims["claim"]>[0]): Promise<boolean> {
    if (!this.#fired) {
      this.#fired = true;
      await this.meanwhile(); // another heal of this user runs while this one is about to claim
    }
    return super.claim(args);
  }
}

describe("the per-user login budget holds when heals of one Exact user run together", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("concurrent heals of one user with a stale TOTP secret do not lock the account", async () => {
    fx = await startFixture({ seed: false });
    const username = "shared@example.com";
    const conns = [];
    for (const n of [1, 2, 3, 4, 5]) {
      const c = await fx.stack.addConnection(`shared-${n}`, { username, clientId: `app-${n}` });
      await fx.stack.seed(c);
      conns.push(c);
    }
    for (const c of conns) {
      fx.stack.writeSecret(c.secretId, {
        clientSecret: `cs-sEcReT-${c.clientId}-0123456789`,
        username,
        password: `pw-sEcReT-${username}-0123456789`,
        totpSecret: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", // the user re-enrolled the authenticator
      });
      await fx.stack.dynamo.client.send(
        new UpdateItemCommand({
          TableName: fx.stack.tableName,
          Key: marshall({ pk: connectionKey(c.connectionId) }),
          UpdateExpression: "SET #status = :broken, statusReason = :reason",
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: marshall({ ":broken": ChainStatus.Broken, ":reason": "old_token" }),
        }),
      );
    }
    const heal = (n: number, meanwhile?: () => Promise<unknown>) =>
      fx
        .broker(
          meanwhile
            ? {
                totpClaims: new ClaimsWithMeanwhile(
                  { tableName: fx.stack.tableName, client: fx.stack.dynamo.client },
                  meanwhile,
                ),
              }
            : {},
        )
        .heal.heal(`shared-${n}`);

    // Earlier in the hour: two failed logins, one after the other.
    await heal(2);
    await heal(3);
    const failures = () => {
      const s = fx.stack.sim.stats().logins[username];
      return { bad_totp: s?.bad_totp ?? 0, locked: s?.locked ?? 0 };
    };
    expect(failures()).toEqual({ bad_totp: 2, locked: 0 });

    // Ten minutes later the scheduled run triggers the other three heals together.
    fx.clock.advance(600);
    const result = await heal(1, () => heal(5, () => heal(4)));
    const reasons = await Promise.all(
      conns.map(async (c) => (await fx.stack.store().get(c.connectionId))?.statusReason),
    );
    const seen = `Exact saw ${JSON.stringify(failures())}; heal of shared-1 said ${JSON.stringify(result)}; reasons ${reasons.join(", ")}`;
    expect
      .soft(failures().bad_totp, `failed logins of the user within the hour (budget 3). ${seen}`)
      .toBeLessThanOrEqual(3);

    // What it costs: the operator fixes the TOTP secret a minute later; Exact has locked the user.
    const fixed = conns[1];
    if (!fixed) throw new Error("no connection");
    fx.stack.writeSecret(fixed.secretId, {
      clientSecret: `cs-sEcReT-${fixed.clientId}-0123456789`,
      username,
      password: `pw-sEcReT-${username}-0123456789`,
      totpSecret: "JBSWY3DPEHPK3PXP",
    });
    fx.clock.advance(60);
    const operator = await fx.broker().heal.heal(fixed.connectionId, { operator: true });
    expect(
      { heal: operator.kind, locked: failures().locked },
      `the account was locked by the broker's logins. ${seen}`,
    ).toEqual({ heal: "healed", locked: 0 });
  });
});
