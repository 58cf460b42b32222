import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { LOGIN_FAILURES_PER_HOUR } from "../../lib/chain/login-budget.js";
import { ChainBusy, ExactUnavailable, ReauthRequired } from "../../lib/errors.js";
import { MemoryPublisher } from "../../lib/events/event-publishers.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { forceStatus } from "../support/force-status.js";
import { LEAK_PATTERN } from "../support/leak-guard.js";
import { storedSecret } from "../support/stored-secret.js";

/** Seconds from a chain's start until its refresh window is open. */
const WINDOW = 572;
/** Vends that stop at BROKEN: the heal is run explicitly by the test. */
const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

/**
 * Kills the chain the way it dies in real life: Exact rotates it and the answer is lost. The vend
 * that lost the answer cannot serve the 28 s left on the current token when 30 s were asked for.
 */
async function breakChain(fx: Fixture): Promise<void> {
  fx.stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", count: 1 });
  fx.clock.advance(WINDOW);
  await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ExactUnavailable);
  fx.clock.advance(3);
  await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ChainBusy);
  expect((await fx.record()).status).toBe(ChainStatus.Broken);
}

/** The last TOTP step a login of the fixture's Exact user claimed. */
async function lastTotpStep(fx: Fixture): Promise<number | undefined> {
  return fx.broker().deps.totpClaims?.lastStep(fx.conn.username);
}

function logins(fx: Fixture) {
  return (
    fx.stack.sim.stats().logins[fx.conn.username] ?? { success: 0, bad_password: 0, bad_totp: 0, locked: 0 }
  );
}

describe("HealDoor", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("heals a chain killed by rotate-then-drop with one login, and vends get the new chain", async () => {
    fx = await startFixture();
    const events = new MemoryPublisher();
    const before = await fx.broker().vend.vend(fx.conn.connectionId, 0);
    fx.stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", count: 1 });
    fx.clock.advance(WINDOW);
    await expect(fx.broker({ ...NO_HEAL, events }).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(
      ExactUnavailable,
    );
    fx.clock.advance(3);
    await expect(fx.broker({ ...NO_HEAL, events }).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(
      ChainBusy,
    );

    const result = await fx.broker({ events }).heal.heal(fx.conn.connectionId);

    expect(result).toEqual({ kind: "healed", generation: 2 });
    expect(logins(fx).success).toBe(1);
    const after = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    expect(after.generation).toBe(2);
    expect(after.accessToken).not.toBe(before.accessToken);
    const healed = await fx.record();
    expect(healed.status).toBe(ChainStatus.Active);
    // The broker holds the chain Exact would accept now.
    expect(healed.refreshHash).toBe(fx.chainStats().liveRefreshHash);
    expect(await lastTotpStep(fx)).toEqual(expect.any(Number));
    expect(events.events.map((e) => [e.type, e.detail.reason])).toEqual([
      ["ChainBroken", "lost_answer"],
      ["ChainHealed", "healed"],
    ]);
    expect(JSON.stringify(events.events)).not.toMatch(LEAK_PATTERN);
    // The healed chain refreshes as usual.
    fx.clock.advance(WINDOW);
    expect((await fx.broker().vend.vend(fx.conn.connectionId, 30)).generation).toBe(3);
  });

  it("heals a chain superseded by another authorization", async () => {
    fx = await startFixture();
    await fx.chainStartedElsewhere();
    fx.clock.advance(WINDOW);
    await expect(fx.broker(NO_HEAL).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ChainBusy);
    expect((await fx.record()).statusReason).toBe("old_token");

    expect(await fx.broker().heal.heal(fx.conn.connectionId)).toMatchObject({ kind: "healed" });
    expect((await fx.broker().vend.vend(fx.conn.connectionId, 30)).generation).toBe(2);
    expect(fx.chainStats().chainsStarted).toBe(3);
  });

  it("is idempotent: a duplicate delivery after the heal does nothing", async () => {
    fx = await startFixture();
    await breakChain(fx);
    await fx.broker().heal.heal(fx.conn.connectionId);

    expect(await fx.broker().heal.heal(fx.conn.connectionId)).toEqual({ kind: "skipped", why: "healthy" });
    expect(logins(fx).success).toBe(1);
  });

  it("stops at REAUTH_REQUIRED after one wrong password, with no second login", async () => {
    fx = await startFixture();
    const events = new MemoryPublisher();
    const secret = await storedSecret(fx.broker().deps.secrets, fx.conn);
    fx.stack.writeSecret(fx.conn.secretId, { ...secret, password: "pw-sEcReT-wrong-0123456789" });
    await breakChain(fx);

    const first = await fx.broker({ events }).heal.heal(fx.conn.connectionId);
    fx.clock.advance(3_600);
    const second = await fx.broker({ events }).heal.heal(fx.conn.connectionId);

    expect(first).toMatchObject({ kind: "failed", errorType: "ReauthRequired" });
    expect(second).toEqual({ kind: "skipped", why: "needs_operator" });
    expect(logins(fx).bad_password).toBe(1);
    expect(await fx.record()).toMatchObject({
      status: ChainStatus.ReauthRequired,
      statusReason: "bad_credentials",
    });
    await expect(fx.broker().vend.vend(fx.conn.connectionId, 0)).rejects.toThrow(/exact-broker heal --id/);
    expect(events.events).toEqual([
      { type: "ReauthRequired", detail: expect.objectContaining({ reason: "bad_credentials" }) },
    ]);
    expect(JSON.stringify(events.events)).not.toMatch(LEAK_PATTERN);
  });

  it("heals at an operator's request once the secret is fixed", async () => {
    fx = await startFixture();
    const secret = await storedSecret(fx.broker().deps.secrets, fx.conn);
    fx.stack.writeSecret(fx.conn.secretId, { ...secret, password: "pw-sEcReT-wrong-0123456789" });
    await breakChain(fx);
    await fx.broker().heal.heal(fx.conn.connectionId);
    fx.stack.writeSecret(fx.conn.secretId, secret);

    expect(await fx.broker().heal.heal(fx.conn.connectionId, { operator: true })).toMatchObject({
      kind: "healed",
    });
    expect((await fx.record()).status).toBe(ChainStatus.Active);
  });

  it("stops at REAUTH_REQUIRED for a locked account", async () => {
    fx = await startFixture();
    await breakChain(fx);
    const secret = await storedSecret(fx.broker().deps.secrets, fx.conn);
    const wrong = { ...secret, password: "pw-sEcReT-wrong-0123456789" };
    fx.stack.writeSecret(fx.conn.secretId, wrong);
    // Someone else's failed attempts lock the account (5 in a row).
    for (let i = 0; i < 5; i += 1) {
      await fx.broker().heal.heal(fx.conn.connectionId, { operator: true });
      fx.clock.advance(31);
    }
    fx.stack.writeSecret(fx.conn.secretId, secret);

    const result = await fx.broker().heal.heal(fx.conn.connectionId, { operator: true });

    expect(result).toMatchObject({ kind: "failed", errorType: "ReauthRequired" });
    expect(await fx.record()).toMatchObject({ status: ChainStatus.ReauthRequired, statusReason: "locked" });
  });

  it("never reuses a TOTP step: the next login waits for the next one", async () => {
    fx = await startFixture();
    await breakChain(fx);
    await fx.broker().heal.heal(fx.conn.connectionId);
    const firstStep = (await lastTotpStep(fx)) ?? 0;
    expect(firstStep).toBeGreaterThan(0);
    // Break it again at once (a superseding authorization), inside the same TOTP step.
    expect(Math.floor(fx.clock.now() / 30_000)).toBe(firstStep);
    const code = fx.stack.sim.authorize({
      clientId: fx.conn.clientId,
      username: fx.conn.username,
      redirectUri: fx.conn.redirectUri,
    });
    await fx.broker().onboarding.seed(fx.conn.connectionId, code);
    await forceStatus(fx.stack, fx.conn.connectionId, {
      status: ChainStatus.Broken,
      statusReason: "operator",
      atGeneration: (await fx.record()).generation,
    });

    const before = fx.clock.now();
    expect(await fx.broker().heal.heal(fx.conn.connectionId)).toMatchObject({ kind: "healed" });

    const secondStep = (await lastTotpStep(fx)) ?? 0;
    expect(secondStep).toBeGreaterThan(firstStep);
    // It waited for the next step to begin rather than reuse the first one.
    expect(before).toBeLessThan((firstStep + 1) * 30_000);
    expect(fx.clock.now()).toBeGreaterThanOrEqual((firstStep + 1) * 30_000);
    expect(logins(fx)).toMatchObject({ success: 2, bad_totp: 0 });
  });

  it("reports a login page it does not understand, naming the step, and backs off", async () => {
    fx = await startFixture();
    await breakChain(fx);
    fx.stack.sim.addFault({ kind: "break_page", page: "b2c", missing: "password" });

    const result = await fx.broker().heal.heal(fx.conn.connectionId);

    expect(result).toMatchObject({
      kind: "failed",
      errorType: "ChainBusy",
      message: expect.stringMatching(/step "[^"]+".*password/),
    });
    expect(await fx.record()).toMatchObject({ status: ChainStatus.Broken, lastLoginFailure: "login_failed" });
    expect(await fx.broker().heal.heal(fx.conn.connectionId)).toEqual({ kind: "skipped", why: "backoff" });
  });

  it(`risks at most ${LOGIN_FAILURES_PER_HOUR} failed logins per chain per hour`, async () => {
    fx = await startFixture();
    await breakChain(fx);
    fx.stack.sim.addFault({ kind: "break_page", page: "b2c", missing: "password", count: 50 });
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i += 1) {
      outcomes.push((await fx.broker().heal.heal(fx.conn.connectionId)).kind);
      fx.clock.advance(300);
    }
    expect(outcomes.filter((kind) => kind === "failed")).toHaveLength(LOGIN_FAILURES_PER_HOUR);
    expect((await fx.record()).loginFailures?.errorAtMs).toHaveLength(LOGIN_FAILURES_PER_HOUR);
  });

  it("goes straight to REAUTH_REQUIRED when the secret holds no login credentials", async () => {
    fx = await startFixture();
    const clientSecret = await fx.broker().deps.secrets.clientSecret(fx.conn.secretId);
    fx.stack.writeSecret(fx.conn.secretId, { clientSecret });
    await breakChain(fx);

    expect(await fx.broker().heal.heal(fx.conn.connectionId)).toMatchObject({
      kind: "failed",
      errorType: "ReauthRequired",
    });
    expect(await fx.record()).toMatchObject({
      status: ChainStatus.ReauthRequired,
      statusReason: "no_login_credentials",
    });
    expect(fx.stack.sim.stats().logins[fx.conn.username]).toBeUndefined();
  });

  it("lets a vend that finds the chain broken trigger the heal and wait for the new token", async () => {
    fx = await startFixture({ realShortSleeps: true });
    fx.stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", count: 1 });
    fx.clock.advance(WINDOW);
    await expect(fx.broker().vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ExactUnavailable);
    fx.clock.advance(3);

    const healed = await fx.broker().vend.vend(fx.conn.connectionId, 30);

    expect(healed.generation).toBe(2);
    expect(logins(fx).success).toBe(1);
  });

  it("never lets a ReauthRequired vend reach Exact", async () => {
    fx = await startFixture();
    const clientSecret = await fx.broker().deps.secrets.clientSecret(fx.conn.secretId);
    fx.stack.writeSecret(fx.conn.secretId, { clientSecret });
    await breakChain(fx);
    await fx.broker().heal.heal(fx.conn.connectionId);
    const before = fx.stack.sim.stats().totals.tokenRequests;

    for (let i = 0; i < 3; i += 1)
      await expect(fx.broker().vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ReauthRequired);

    expect(fx.stack.sim.stats().totals.tokenRequests).toEqual(before);
  });
});
