import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import type { InProcessHealTrigger } from "../../../lib/chain/heal-trigger.js";
import type { LoginDriver } from "../../../lib/exact/login/login-driver.js";
import { OneExactIdentityDriver } from "../../../lib/exact/login/one-exact-identity-driver.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

/**
 * README: "every failure backs off"; invariant 7: "failing chains back off; logins are
 * rate-limited". A failed implicit-mode login is recorded by LoginFailures.retryLater with a
 * backoff (backoffMs(streak + 3), about 16 s) but keeps the chain's status (ACTIVE): `keeps`.
 * loginBlockedFor (login-budget.ts) honours `backoffUntilMs` only for a BROKEN chain, and the
 * vend door's implicit branch (vend-door.ts `needsLogin`) and the heal door's skipReason consult
 * nothing else. So every vend that finds the token short triggers another login at once: a login
 * page that misbehaves for three seconds spends the chain's whole hourly budget (and the Exact
 * user's, on the TOTP#<user> item, for every connection of that user) in three back-to-back
 * logins, and the connection then has no token for an hour although logins work again.
 */
describe("a failed implicit-mode login", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("backs off: the next vends do not log in again before the backoff ends", async () => {
    fx = await startFixture({ mode: "implicit", realShortSleeps: true });
    const inner = new OneExactIdentityDriver({
      allowLoopback: true,
      now: fx.clock.now,
      sleep: fx.clock.sleep,
    });
    let attempts = 0;
    const login: LoginDriver = {
      login: (request) => {
        attempts += 1;
        return inner.login(request);
      },
    };
    const id = fx.conn.connectionId;
    expect(await fx.broker({ login }).heal.heal(id)).toMatchObject({ kind: "healed" });
    attempts = 0;

    // 20 s before the token expires, Exact's start page misbehaves for a few seconds.
    fx.clock.advance(580);
    fx.stack.sim.addFault({ kind: "break_page", page: "start", missing: "form", count: 3 });
    for (let second = 0; second < 3; second++) {
      const broker = fx.broker({ login, vendOptions: { waitMs: 500 } });
      await broker.vend.vend(id, 30).catch(() => undefined);
      await (broker.healTrigger as InProcessHealTrigger).settled();
      fx.clock.advance(1);
    }
    const record = await fx.record();
    expect
      .soft(
        attempts,
        `logins within 3 s (status ${record.status}, backoff until +${Math.round(((record.backoffUntilMs ?? 0) - fx.clock.now()) / 1000)} s, loginFailures ${record.loginFailures?.errorAtMs.length ?? 0})`,
      )
      .toBe(1);

    // The page is fixed; once the first failure's backoff is over, a vend gets a token again.
    fx.stack.sim.clearFaults();
    fx.clock.advance(30);
    const broker = fx.broker({ login, vendOptions: { waitMs: 5_000 } });
    const after = await broker.vend.vend(id, 30).then(
      () => "served",
      (e: Error) => `${e.name}: ${e.message}`,
    );
    await (broker.healTrigger as InProcessHealTrigger).settled();
    expect(after).toBe("served");
    expect((await fx.record()).status).toBe(ChainStatus.Active);
  });
});
