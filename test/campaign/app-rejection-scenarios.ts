import { ChainStatus } from "../../lib/chain/chain-record.js";
import type { CaseRun, Door } from "./case-run.js";
import {
  consumerHoldsCurrent,
  reportAgain,
  reportedGeneration,
  reportingConsumer,
} from "./rejected-scenarios.js";
import { expectStatus, seed, toWindow, vend } from "./scenarios.js";

/**
 * Doors of an app Exact rejects (issue 9, app-level failures): `invalid_client` at the token
 * endpoint (the secret re-read bypassing the cache, resent only when it changed), the app's
 * chains held while it is rejected and the one paced probe, and "Application Scope Violated" on
 * `/current/Me` at a chain start's identity check and at a reported token's check, with the
 * app's re-check once Me answers again. Exact's answers are the simulator's scripts
 * (lib/sim/scripts.ts), as test/chain/bad-days/app-rejected.test.ts makes them.
 */

/** A secret the app had before it was regenerated in Exact's App Center ("sEcReT": the leak guard's mark). */
const STALE_SECRET = "cs-sEcReT-stale-before-the-rotation-0123456789";

/** Exact's answer to a client secret it does not accept (its rule: 401 `invalid_client`). */
function invalidClientOnce(run: CaseRun): void {
  run.world.sim.addScript({
    endpoint: "token",
    clientId: run.connection.clientId,
    status: 401,
    json: { error: "invalid_client", error_description: "Invalid client_secret." },
  });
}

/** `/current/Me` refuses the app, as reported: 403 with the REST API's OData error body. */
function meScopeViolatedOnce(run: CaseRun): void {
  run.world.sim.addScript({
    endpoint: "me",
    clientId: run.connection.clientId,
    status: 403,
    json: {
      error: {
        code: "",
        message: { lang: "", value: "Forbidden - Application Scope Violated. Cannot read current user." },
      },
    },
  });
}

/**
 * R1. A vend in a warm container whose cached client secret was regenerated in Exact's App
 * Center (and in ours since): Exact answers `invalid_client`, the secret is read once more
 * bypassing the cache, it changed, and the refresh is sent once more with it.
 */
export const vendResendsNewSecret: Door = {
  name: "vend (invalid_client: secret re-read, resent)",
  mode: "code",
  async setup(run) {
    await seed(run);
    run.world.secrets.cacheStaleClientSecret(run.connection.secretId, STALE_SECRET);
    await toWindow(run);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/**
 * R2. A vend whose refresh Exact answers `invalid_client` while the secret store holds the same
 * secret (not resent): the app is rejected (one AppRejected), the chain backs off 15 minutes and
 * the vend answers ReauthRequired. Exact accepts the app again at the next try (the script answers
 * once), which is the app's paced probe.
 */
export const vendAppRejected: Door = {
  name: "vend (invalid_client: secret unchanged, app rejected)",
  mode: "code",
  async setup(run) {
    await seed(run);
    await toWindow(run);
    invalidClientOnce(run);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/** Two chains of one app in their windows; the peer's refresh got `invalid_client`: the app is rejected. */
async function appRejected(run: CaseRun): Promise<void> {
  await seed(run);
  const peer = await run.addPeer();
  await seed(run, peer);
  await toWindow(run);
  await toWindow(run, peer);
  invalidClientOnce(run);
  await run.invoke("setup", (invocation) => run.vend(invocation, 30, peer));
  const rejections = Object.values((await run.world.app(run.connection.clientId)).rejectedSecrets ?? {});
  const [rejection] = rejections;
  if (rejections.length !== 1 || !rejection) {
    throw new Error(`${run.door.name} setup: the app is not rejected`);
  }
  run.scratch.atMs = rejection.nextProbeAtMs;
}

/** R3. A vend of the rejected app's other chain before the rejection's probe is due: held, no token call. */
export const vendHeldByRejection: Door = {
  name: "vend (app rejected: held)",
  mode: "code",
  setup: appRejected,
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/** R4. The same once the probe is due: this chain claims it, Exact accepts the app now, the rejection ends. */
export const vendProbesRejectedApp: Door = {
  name: "vend (app rejected: the rejection probe)",
  mode: "code",
  async setup(run) {
    await appRejected(run);
    // The chain's own backoff (the peer's answer did not touch it) is not the app's: its window.
    run.world.clock.advanceTo((run.scratch.atMs ?? 0) + 1);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/**
 * R5. `connection seed` whose identity check `/current/Me` refuses with "Application Scope
 * Violated": the chain is stored (VERIFYING), the app's REST API rejection recorded and announced
 * once; the app's re-check, 15 minutes on, finds Me answering (the script answers once).
 */
export const seedScopeViolated: Door = {
  name: "seed (Me: Application Scope Violated)",
  mode: "code",
  async setup(run) {
    run.scratch.code = run.world.authorize(run.connection);
    meScopeViolatedOnce(run);
  },
  act: (run, invocation) =>
    invocation.broker.onboarding.seed(run.connection.connectionId, run.scratch.code ?? ""),
  compete: vend,
};

/**
 * R6. The app's re-check: a chain stored VERIFYING while Me refused the app's scopes, at the
 * moment the re-check is due; a vend claims it, Me answers the user again, the rejection ends and
 * the chain is ACTIVE (no login).
 */
export const vendRechecksScope: Door = {
  name: "identity check (app re-check after Application Scope Violated)",
  mode: "code",
  async setup(run) {
    meScopeViolatedOnce(run);
    const code = run.world.authorize(run.connection);
    await run.invoke("setup", (invocation) =>
      invocation.broker.onboarding.seed(run.connection.connectionId, code),
    );
    await expectStatus(run, ChainStatus.Verifying);
    const rejected = (await run.world.app(run.connection.clientId)).apiRejected;
    if (!rejected) throw new Error(`${run.door.name} setup: the app's REST API is not rejected`);
    run.world.clock.advanceTo(rejected.nextCheckAtMs + 1);
    const item = await run.item();
    run.world.clock.advanceTo((item.backoffUntilMs ?? 0) + 1);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/**
 * R7. A vend reporting the current generation refused while `/current/Me` refuses the app's
 * scopes: the app is held (one AppRejected), the vend told to come back; the consumer reports
 * again when told (15 minutes), that report's check finds Me answering and the token is served.
 */
export const vendRejectedScopeViolated: Door = {
  name: "vend (rejected token, Me: Application Scope Violated)",
  mode: "code",
  async setup(run) {
    await seed(run);
    await consumerHoldsCurrent(run);
    meScopeViolatedOnce(run);
  },
  act: (run, invocation) => run.vendReporting(invocation, 30, reportedGeneration(run)),
  compete: reportingConsumer(30),
  followUp: reportAgain(30),
};
