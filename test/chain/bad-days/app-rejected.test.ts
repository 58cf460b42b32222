import { afterEach, describe, expect, it } from "vitest";
import { type AppState, AppStates, REJECTION_PROBE_MS } from "../../../lib/chain/app-states.js";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import type { DemoConnection } from "../../../lib/local/local-stack.js";
import type { ConnectionSecret, LoginCredentials } from "../../../lib/secrets/connection-secret.js";
import { createFileSecretSource } from "../../../lib/secrets/file-secret-source.js";
import type { SecretOwner } from "../../../lib/secrets/secret-layout.js";
import type { SecretGetOptions, SecretSource } from "../../../lib/secrets/secret-source.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  addSibling,
  advanceToWindow,
  countedErrors,
  eventsOf,
  expectLiveChain,
  type Harness,
  harness,
  recordOf,
  seed,
  successfulLogins,
  tokenAnswers,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

/** As lib/local/local-stack.ts addConnection stores it (and registers it at the simulator's app). */
const secretOf = (clientId: string) => `cs-sEcReT-${clientId}-0123456789`;
const STALE_SECRET = "cs-sEcReT-stale-before-the-rotation-0123456789";

function writeClientSecret(fx: Fixture, conn: DemoConnection, clientSecret: string): void {
  const secret: ConnectionSecret = {
    clientSecret,
    username: conn.username,
    password: `pw-sEcReT-${conn.username}-0123456789`,
    totpSecret: "JBSWY3DPEHPK3PXP",
  };
  fx.stack.writeSecret(conn.secretId, secret);
}

/** Secrets Manager as Powertools reads it in AWS: cached, unless the caller forces a fetch. */
class CachedSecrets implements SecretSource {
  readonly #inner: SecretSource;
  readonly #cache = new Map<string, string>();
  forcedFetches = 0;
  constructor(inner: SecretSource) {
    this.#inner = inner;
  }
  async clientSecret(secretId: string, options: SecretGetOptions = {}): Promise<string> {
    if (options.forceFetch) this.forcedFetches += 1;
    const cached = options.forceFetch ? undefined : this.#cache.get(secretId);
    if (cached) return cached;
    const fresh = await this.#inner.clientSecret(secretId);
    this.#cache.set(secretId, fresh);
    return fresh;
  }
  async loginCredentials(
    owner: SecretOwner,
    options: SecretGetOptions = {},
  ): Promise<LoginCredentials | undefined> {
    if (options.forceFetch) this.forcedFetches += 1;
    return this.#inner.loginCredentials(owner);
  }
}

/** `/current/Me` refuses the fixture's app as the report has it: a 403 with the REST API's OData error body. */
function meScopeViolated(fx: Fixture): void {
  fx.stack.sim.addScript({
    endpoint: "me",
    clientId: fx.conn.clientId,
    count: 1_000,
    status: 403,
    json: {
      error: {
        code: "",
        message: { lang: "", value: "Forbidden - Application Scope Violated. Cannot read current user." },
      },
    },
  });
}

/** What the broker holds for the fixture's app at the simulator (app-states.ts). */
async function appState(fx: Fixture): Promise<AppState> {
  const apps = new AppStates({ tableName: fx.stack.tableName, client: fx.stack.dynamo.client });
  return apps.read(fx.conn.clientId, (await recordOf(fx, fx.conn.connectionId)).baseUrl);
}

/** Three chains of one app, all inside Exact's refresh window. */
async function threeChains(fx: Fixture): Promise<DemoConnection[]> {
  const chains = [fx.conn, await addSibling(fx, "app-b"), await addSibling(fx, "app-c")];
  await advanceToWindow(fx, "app-c");
  return chains;
}

async function vendAll(h: Harness, chains: readonly DemoConnection[], minValiditySeconds = 30) {
  const outcomes = [];
  for (const conn of chains)
    outcomes.push(await vendOutcome(h.broker(), conn.connectionId, minValiditySeconds));
  return outcomes;
}

/** Token requests that reached the simulator for the app, by outcome, over all its chains. */
function appAnswers(fx: Fixture, chains: readonly DemoConnection[], outcome: string): number {
  return chains.reduce((sum, conn) => sum + (tokenAnswers(fx, conn)[outcome] ?? 0), 0);
}

/** The scheduled refresher each minute and every consumer vending, for `minutes`. */
async function runMinutes(fx: Fixture, h: Harness, chains: readonly DemoConnection[], minutes: number) {
  for (let minute = 0; minute < minutes; minute++) {
    fx.clock.advance(60);
    await h.broker().refresh.run();
    await vendAll(h, chains, 0);
  }
}

/**
 * App-level failures (issue 9): "Application Scope Violated" for every user of one client ID
 * after an Exact policy change. One AppRejected event for the app, not one per chain; its chains
 * stop calling (one of them asks again every REJECTION_PROBE_MS, 15 min) and resume by themselves
 * once Exact accepts the app again.
 */
describe('"Application Scope Violated" for every chain of one app', () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("at the token endpoint: one AppRejected for the app, the chains stop calling, and resume by themselves at the app's next probe (15 min)", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const chains = await threeChains(fx);
    tokenScript(fx, {
      count: 1_000,
      status: 403,
      json: { error: "access_denied", error_description: "Forbidden - Application Scope Violated." },
    });

    const first = await vendAll(h, chains);

    // The first chain asked and got the answer; the other two were held without a call.
    for (const outcome of first) expect(outcome).toMatchObject({ error: "ReauthRequired", retryable: false });
    expect(appAnswers(fx, chains, "scripted")).toBe(1);
    expect(eventsOf(h.events)).toEqual([["AppRejected", fx.conn.connectionId, "scope_violated"]]);
    for (const conn of chains) {
      expect((await recordOf(fx, conn.connectionId)).status).toBe(ChainStatus.Active);
    }

    // An hour of it: one chain of the app asks every 15 minutes; no other event, no login.
    await runMinutes(fx, h, chains, 60);
    const probes = appAnswers(fx, chains, "scripted");
    expect(probes).toBeGreaterThanOrEqual(1 + 3);
    expect(probes).toBeLessThanOrEqual(1 + 60 / (REJECTION_PROBE_MS / 60_000));
    expect(eventsOf(h.events, "AppRejected")).toHaveLength(1);
    expect(eventsOf(h.events).filter(([type]) => type !== "AppRejected")).toEqual([]);
    for (const conn of chains) {
      expect(countedErrors(await recordOf(fx, conn.connectionId))).toBeLessThanOrEqual(4);
      expect(successfulLogins(fx, conn)).toBe(0);
    }

    // The app's scopes are fixed in the App Center: the next probe finds it accepted.
    fx.stack.sim.clearScripts();
    let minutes = 0;
    while (minutes < 30) {
      await runMinutes(fx, h, chains, 1);
      minutes += 1;
      const served = await vendAll(h, chains);
      if (served.every((outcome) => "served" in outcome)) break;
    }
    // The probe comes 15 min after the last one, plus a spread of up to 5 s and the refresher's minute.
    expect(minutes).toBeLessThanOrEqual(17);
    for (const conn of chains) {
      expect((await recordOf(fx, conn.connectionId)).status).toBe(ChainStatus.Active);
      await expectLiveChain(fx, conn);
      expect(successfulLogins(fx, conn)).toBe(0);
    }
  });

  /**
   * The report is "Application Scope Violated" on every call, and the simulator's README scripts
   * it on /current/Me (a 403 with the REST API's OData error body). The broker's own Me calls (the
   * identity check of every chain start) hold the app (outage-pacing.ts apiRefused): one event,
   * and one chain of the app re-checks for all every REJECTION_PROBE_MS.
   */
  it("on /current/Me at the chain starts of two chains: one AppRejected for the app, no per-chain retries", async () => {
    fx = await startFixture({ seed: false });
    const h = harness(fx);
    const b = await fx.stack.addConnection("app-scope-b", { clientId: fx.conn.clientId });
    meScopeViolated(fx);

    for (const conn of [fx.conn, b]) await seed(fx, conn, h.broker()).catch(() => undefined);
    await runMinutes(fx, h, [fx.conn, b], 30);

    const statuses = [];
    for (const conn of [fx.conn, b]) statuses.push((await recordOf(fx, conn.connectionId)).status);
    expect({
      appRejectedEvents: eventsOf(h.events, "AppRejected").length,
      meCallsInHalfAnHour: fx.stack.sim.stats().totals.meRequests.scripted,
      statuses,
    }).toEqual({
      appRejectedEvents: 1,
      // The two chain starts' checks, and at most one paced check for the app after them.
      meCallsInHalfAnHour: expect.toSatisfy((calls: number) => calls <= 3),
      statuses: [ChainStatus.Verifying, ChainStatus.Verifying],
    });
  });

  it("on /current/Me at two chain starts: once Me answers a user again, the app's next re-check clears the rejection and both chains are served, with no login", async () => {
    fx = await startFixture({ seed: false });
    const h = harness(fx);
    const b = await fx.stack.addConnection("app-scope-b", { clientId: fx.conn.clientId });
    const chains = [fx.conn, b];
    meScopeViolated(fx);
    for (const conn of chains) await seed(fx, conn, h.broker()).catch(() => undefined);
    expect(eventsOf(h.events)).toEqual([["AppRejected", fx.conn.connectionId, "scope_violated"]]);
    expect((await appState(fx)).apiRejected).toBeDefined();

    // The app's scopes are fixed in the App Center: Me answers the users again.
    fx.stack.sim.clearScripts();
    let minutes = 0;
    let served: Awaited<ReturnType<typeof vendAll>> = [];
    while (minutes < 30) {
      await runMinutes(fx, h, chains, 1);
      minutes += 1;
      served = await vendAll(h, chains);
      if (served.every((outcome) => "served" in outcome)) break;
    }

    // The app's re-check comes 15 min after the rejection, plus a spread of up to 5 s and the refresher's minute.
    expect(minutes).toBeLessThanOrEqual(17);
    expect(served).toEqual(chains.map(() => expect.objectContaining({ served: expect.any(Number) })));
    expect((await appState(fx)).apiRejected).toBeUndefined();
    for (const conn of chains) {
      expect((await recordOf(fx, conn.connectionId)).status).toBe(ChainStatus.Active);
      await expectLiveChain(fx, conn);
      expect(successfulLogins(fx, conn)).toBe(0);
    }
    expect(eventsOf(h.events)).toEqual([["AppRejected", fx.conn.connectionId, "scope_violated"]]);
  });

  it("on /current/Me when a consumer reports a token refused: the app is held, and a report after the re-check is due finds Me answering and clears it", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    meScopeViolated(fx);

    // A consumer got a 401 with generation 1 and reports it; Me refuses the app.
    const reported = await vendOutcome(h.broker(), id, 30, { rejectedGeneration: 1 });

    expect(reported).toMatchObject({ error: "ExactUnavailable", retryable: true });
    expect(eventsOf(h.events)).toEqual([["AppRejected", id, "scope_violated"]]);
    expect((await appState(fx)).apiRejected).toBeDefined();
    expect(fx.stack.sim.stats().totals.meRequests.scripted).toBe(1);

    // Scopes fixed; the chain refreshes on as usual (no Me call) until the app's re-check is due.
    fx.stack.sim.clearScripts();
    await runMinutes(fx, h, [fx.conn], REJECTION_PROBE_MS / 60_000 + 1);
    const { generation } = await recordOf(fx, id);
    expect(generation).toBeGreaterThan(1);
    expect((await appState(fx)).apiRejected).toBeDefined();
    const meAnsweredBefore = fx.chainStats().meRequests.ok;

    const again = await vendOutcome(h.broker(), id, 30, { rejectedGeneration: generation });

    // Me accepted the token: served again, and the app's rejection is over.
    expect(again).toMatchObject({ served: generation });
    expect((await appState(fx)).apiRejected).toBeUndefined();
    expect(fx.chainStats().meRequests.ok - meAnsweredBefore).toBe(1);
    expect(successfulLogins(fx)).toBe(0);
    expect(eventsOf(h.events)).toEqual([["AppRejected", id, "scope_violated"]]);
    await expectLiveChain(fx);
  });
});

/**
 * `invalid_client` for every chain of an app after its client secret was regenerated in Exact's
 * App Center. The simulator cannot change a registered app's secret (lib/sim/state.ts: an App's
 * clientSecret is fixed), so the rotation is made on our side: the secret the broker holds no
 * longer matches the app's at Exact, which answers with its own rule 6 (401 invalid_client,
 * "Invalid client_secret."), exactly what a rotation at Exact produces. Fixing it puts the
 * matching secret back in the connections' secrets.
 */
describe("invalid_client for every chain of one app (the client secret rotated in Exact's App Center)", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("one AppRejected for the app, the chains stop calling, and resume by themselves at their next try (within 15 min) once the secret is fixed", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const chains = await threeChains(fx);
    for (const conn of chains) writeClientSecret(fx, conn, STALE_SECRET);

    const first = await vendAll(h, chains);

    for (const outcome of first) expect(outcome).toMatchObject({ error: "ReauthRequired", retryable: false });
    // One call: the secret was re-read once (unchanged, so not resent); the other chains held.
    expect(appAnswers(fx, chains, "invalid_client")).toBe(1);
    expect(eventsOf(h.events)).toEqual([["AppRejected", fx.conn.connectionId, "invalid_client"]]);

    await runMinutes(fx, h, chains, 30);
    expect(appAnswers(fx, chains, "invalid_client")).toBeLessThanOrEqual(1 + 2);
    expect(eventsOf(h.events)).toHaveLength(1);

    for (const conn of chains) writeClientSecret(fx, conn, secretOf(conn.clientId));
    let minutes = 0;
    while (minutes < 30) {
      await runMinutes(fx, h, chains, 1);
      minutes += 1;
      const served = await vendAll(h, chains);
      if (served.every((outcome) => "served" in outcome)) break;
    }

    // A new secret clears the app's rejection at once, but each chain tries it only when its own
    // backoff ends: 15 min after the rejection (token-protocol.ts, REJECTION_PROBE_MS).
    expect(minutes).toBeLessThanOrEqual(17);
    for (const conn of chains) {
      expect((await recordOf(fx, conn.connectionId)).status).toBe(ChainStatus.Active);
      await expectLiveChain(fx, conn);
      expect(successfulLogins(fx, conn)).toBe(0);
    }
    expect(eventsOf(h.events)).toHaveLength(1);
  });

  it("a warm container's cached secret: re-read once bypassing the cache, and the refresh sent once more with the new secret", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    const secrets = new CachedSecrets(createFileSecretSource(fx.stack.env.LOCAL_SECRETS_FILE ?? ""));
    // The container cached the old secret; Exact's app and our secret store have the new one since.
    writeClientSecret(fx, fx.conn, STALE_SECRET);
    await secrets.clientSecret(fx.conn.secretId);
    writeClientSecret(fx, fx.conn, secretOf(fx.conn.clientId));
    await advanceToWindow(fx);

    const served = await vendOutcome(h.broker({ secrets }), id, 30);

    expect(served).toMatchObject({ served: 2 });
    expect(secrets.forcedFetches).toBe(1);
    expect(tokenAnswers(fx)).toEqual({ issued: 2, code_exchanged: 1, refreshed: 1, invalid_client: 1 });
    expect(await recordOf(fx, id)).toMatchObject({ status: ChainStatus.Active, generation: 2 });
    await expectLiveChain(fx);
    expect(eventsOf(h.events)).toEqual([]);
  });

  it("a secret that did not change is not resent: one call, one re-read", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const secrets = new CachedSecrets(createFileSecretSource(fx.stack.env.LOCAL_SECRETS_FILE ?? ""));
    writeClientSecret(fx, fx.conn, STALE_SECRET);
    await advanceToWindow(fx);

    expect(await vendOutcome(h.broker({ secrets }), fx.conn.connectionId, 30)).toMatchObject({
      error: "ReauthRequired",
    });
    expect(secrets.forcedFetches).toBe(1);
    expect(tokenAnswers(fx)).toEqual({ issued: 1, code_exchanged: 1, invalid_client: 1 });
    await expectLiveChain(fx);
  });
});
