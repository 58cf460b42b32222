import { afterEach, describe, expect, it } from "vitest";
import { ExactOAuthClient } from "../../../lib/exact/oauth-client.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

/**
 * TokenCache (lib/chain/token-cache.ts) is keyed by connection ID only, and VendDoor.vend answers
 * from it before reading the item. After `connection remove` + `connection add` with the same ID
 * (a new incarnation, here connected to another Exact user), a warm token-vend container keeps
 * answering the predecessor's access token, of the other user, for as long as it is valid
 * (up to 10 minutes). Its generation guard (`put` keeps the higher generation) also refuses the
 * new incarnation's answers while the predecessor's generation is higher.
 */
describe("incarnations and the warm-container cache", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("a re-added connection never gets its predecessor's token from a warm container", async () => {
    fx = await startFixture({ seed: false });
    const clientId = "app-shared";
    const x = "user-x@example.com";
    const u = "user-u@example.com";
    const warm = fx.broker(); // one token-vend container, kept warm
    const first = await fx.stack.addConnection("conn-r", { username: x, clientId });
    await fx.stack.seed(first);
    const before = await warm.vend.vend("conn-r", 30);

    // The operator removes the connection and adds it again for another Exact user.
    fx.clock.advance(60);
    const old = await fx.stack.store().get("conn-r");
    if (!old) throw new Error("gone");
    await fx.stack.store().removeConnection(old);
    fx.stack.sim.addUser({
      username: u,
      password: `pw-sEcReT-${u}-0123456789`,
      totpSecret: "JBSWY3DPEHPK3PXP",
    });
    fx.stack.writeSecret(first.secretId, {
      clientSecret: `cs-sEcReT-${clientId}-0123456789`,
      username: u,
      password: `pw-sEcReT-${u}-0123456789`,
      totpSecret: "JBSWY3DPEHPK3PXP",
    });
    await fx.stack.store().addConnection(
      {
        connectionId: "conn-r",
        clientId,
        baseUrl: fx.stack.sim.url,
        redirectUri: first.redirectUri,
        secretId: first.secretId,
        mode: "code",
      },
      fx.clock.now(),
    );
    await fx
      .broker()
      .onboarding.seed(
        "conn-r",
        fx.stack.sim.authorize({ clientId, username: u, redirectUri: first.redirectUri }),
      );

    const after = await warm.vend.vend("conn-r", 30);
    const me = await new ExactOAuthClient({ now: fx.clock.now }).me(
      fx.stack.sim.url,
      after.accessToken,
      5_000,
    );
    expect(after.accessToken === before.accessToken, "served the predecessor's cached token").toBe(false);
    expect(me.kind === "user" ? me.me.userName : me.kind).toBe(u);
  });
});
