import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import { storedSecret } from "../../support/stored-secret.js";

/**
 * README: "A wrong password or a locked account stops at once at REAUTH_REQUIRED (no second
 * attempt); so does a TOTP code refused twice in a row (for that user, by any connection)".
 * LoginFailures.loginFailed decides "twice" from the chain's lastLoginFailure (cleared when a
 * login succeeds: verified()) OR the Exact user's lastLoginFailure on the TOTP#<user> item, which
 * nothing ever clears: a successful login does not touch it, and every claim renews the item's
 * 24 h TTL, so while the user logs in at all it never expires. One refused code, any number of
 * successful logins, and one refused code hours later: REAUTH_REQUIRED, the connection dead until
 * an operator acts. Implicit-mode connections log in every ~9 minutes, so they meet it first.
 */
describe("bad TOTP twice means twice in a row", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("a refused TOTP code long after the last one, with successful logins between, is retried", async () => {
    fx = await startFixture({ mode: "implicit" });
    const id = fx.conn.connectionId;
    const secret = await storedSecret(fx.broker().deps.secrets, fx.conn);
    const wrongCode = () =>
      fx.stack.writeSecret(fx.conn.secretId, { ...secret, totpSecret: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" });
    const rightCode = () => fx.stack.writeSecret(fx.conn.secretId, secret);
    const heal = () => fx.broker().heal.heal(id);

    expect(await heal()).toMatchObject({ kind: "healed" });
    // One code refused (a step boundary, a clock off by a few seconds)...
    fx.clock.advance(545);
    wrongCode();
    expect(await heal()).toMatchObject({ kind: "failed", errorType: "ChainBusy" });
    rightCode();
    fx.clock.advance(25);
    expect(await heal()).toMatchObject({ kind: "healed" });
    // ... then an hour and a half of normal implicit logins, every one of them accepted.
    for (let i = 0; i < 10; i++) {
      fx.clock.advance(545);
      expect(await heal()).toMatchObject({ kind: "healed" });
    }
    // One more refused code: the first in a row.
    fx.clock.advance(545);
    wrongCode();
    const second = await heal();
    const record = await fx.record();
    expect(
      { status: record.status, heal: second.kind === "failed" ? second.errorType : second.kind },
      `successful logins so far: ${fx.stack.sim.stats().logins[fx.conn.username]?.success}`,
    ).toEqual({ status: ChainStatus.Active, heal: "ChainBusy" });
  });
});
