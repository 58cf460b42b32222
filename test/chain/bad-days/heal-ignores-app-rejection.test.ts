import { afterEach, describe, expect, it } from "vitest";
import { REJECTION_PROBE_MS } from "../../../lib/chain/app-states.js";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import type { DemoConnection } from "../../../lib/local/local-stack.js";
import { createFileSecretSource } from "../../../lib/secrets/file-secret-source.js";
import type { SecretSource } from "../../../lib/secrets/secret-source.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  addSibling,
  advanceToWindow,
  eventsOf,
  expectLiveChain,
  harness,
  recordOf,
  successfulLogins,
  tokenAnswers,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

const STALE_SECRET = "cs-sEcReT-stale-before-the-rotation-0123456789";

function writeClientSecret(fx: Fixture, conn: DemoConnection, clientSecret: string): void {
  fx.stack.writeSecret(conn.secretId, {
    clientSecret,
    username: conn.username,
    password: `pw-sEcReT-${conn.username}-0123456789`,
    totpSecret: "JBSWY3DPEHPK3PXP",
  });
}

/**
 * Issue 9, app-level failures: "`invalid_client` on every chain of a client ID … One event per
 * app, not N heals and not N × errors." The app rejection lives in token-protocol.ts and
 * outage-pacing.ts (refreshes only). A heal (login-protocol.ts) neither looks at the app's state
 * nor records an `invalid_client` answer to its code exchange as one: each BROKEN chain of the
 * app logs in (a TOTP step, a real login at Exact), its exchange is refused, and the refusal
 * counts as that chain's (and its user's) failed login. Here: the app's secret was regenerated
 * while two chains were BROKEN (a table restore, a superseding consent).
 */
describe("two BROKEN chains of one app whose client secret Exact no longer accepts", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("one AppRejected for the app and at most one login, not one failed login per chain", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const b = await addSibling(fx, "rejected-b");
    const chains = [fx.conn, b];
    await advanceToWindow(fx, b.connectionId);
    // Both chains are found dead ("old refresh token", nothing processed).
    tokenScript(fx, {
      count: 2,
      status: 401,
      json: { error: "unauthorized_client", error_description: "Old refresh token used." },
    });
    for (const conn of chains) await vendOutcome(h.broker(), conn.connectionId, 30);
    for (const conn of chains)
      expect((await recordOf(fx, conn.connectionId)).status).toBe(ChainStatus.Broken);
    for (const conn of chains) writeClientSecret(fx, conn, STALE_SECRET);

    for (const conn of chains)
      await h
        .broker()
        .heal.heal(conn.connectionId)
        .catch(() => undefined);

    const loginFailures = [];
    for (const conn of chains)
      loginFailures.push((await recordOf(fx, conn.connectionId)).loginFailures?.errorAtMs.length ?? 0);
    expect({
      appRejected: eventsOf(h.events, "AppRejected").length,
      logins: chains.reduce((sum, conn) => sum + successfulLogins(fx, conn), 0),
      loginFailures,
    }).toEqual({ appRejected: 1, logins: 1, loginFailures: [0, 0] });

    // The operator puts the app's current secret in place: each chain heals at its next try.
    for (const conn of chains) writeClientSecret(fx, conn, `cs-sEcReT-${conn.clientId}-0123456789`);
    fx.clock.advance(REJECTION_PROBE_MS / 1000 + 10);
    for (const conn of chains) expect((await h.broker().heal.heal(conn.connectionId)).kind).toBe("healed");
    for (const conn of chains) await expectLiveChain(fx, conn);
    expect(eventsOf(h.events, "AppRejected")).toHaveLength(1);
  });

  it("an exchange refused with the secret read before the login is sent once more when the secret changed meanwhile", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const conn = fx.conn;
    await advanceToWindow(fx);
    tokenScript(fx, {
      status: 401,
      json: { error: "unauthorized_client", error_description: "Old refresh token used." },
    });
    await vendOutcome(h.broker(), conn.connectionId, 30);
    writeClientSecret(fx, conn, STALE_SECRET);
    // The operator fixes the secret while the heal logs in: the first read before the login
    // returns the stale one, the re-read after invalid_client the fixed one.
    const files = createFileSecretSource(String(fx.stack.env.LOCAL_SECRETS_FILE));
    let reads = 0;
    const secrets: SecretSource = {
      async clientSecret(secretId, options) {
        const value = await files.clientSecret(secretId, options);
        reads += 1;
        if (reads === 1) writeClientSecret(fx, conn, `cs-sEcReT-${conn.clientId}-0123456789`);
        return value;
      },
      loginCredentials: (owner, options) => files.loginCredentials(owner, options),
    };

    const heal = await h.broker({ secrets }).heal.heal(conn.connectionId);

    expect(heal.kind).toBe("healed");
    expect(tokenAnswers(fx)).toMatchObject({ invalid_client: 1 });
    expect(eventsOf(h.events, "AppRejected")).toEqual([]);
    await expectLiveChain(fx);
  });
});
