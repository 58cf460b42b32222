import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { Cookie } from "tough-cookie";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import { createConnectFlow } from "../../lib/onboarding/connect-flow.js";
import type { CaseRun, Door, Invocation } from "./case-run.js";
import type { CampaignConnection } from "./world.js";

/**
 * The engine's doors as scenarios. Each setup runs clean invocations to bring a fresh
 * connection where the door has work; `act` is the door's call in the invocation the campaign
 * faults; `compete` is what a hang lets in meanwhile.
 */

/** Seeds the case's connection (or `connection`) with a fresh code of its user, as `connection seed` does. */
export async function seed(run: CaseRun, connection: CampaignConnection = run.connection): Promise<void> {
  await run.invoke("setup", (invocation) => run.seed(invocation, connection));
  await expectStatus(run, ChainStatus.Active, connection);
}

export async function expectStatus(
  run: CaseRun,
  status: ChainStatus,
  connection: CampaignConnection = run.connection,
): Promise<void> {
  const item = await run.item(connection);
  if (item.status !== status) {
    throw new Error(
      `${run.door.name} setup: ${connection.connectionId}'s chain is ${item.status}, expected ${status}`,
    );
  }
}

/** To the moment Exact's refresh window opens for the chain's current token. */
export async function toWindow(run: CaseRun, connection: CampaignConnection = run.connection): Promise<void> {
  const item = await run.item(connection);
  run.world.clock.advanceTo(item.windowOpensAtMs ?? run.world.clock.now());
}

export const vend = (run: CaseRun) => run.invoke("competitor", (invocation) => run.vend(invocation, 30));
export const heal = (run: CaseRun) =>
  run.invoke("competitor", (invocation) => invocation.broker.heal.heal(run.connection.connectionId));
export const scheduled = (run: CaseRun) =>
  run.invoke("competitor", (invocation) => invocation.broker.refresh.run());

/** 1. A vend that refreshes: ACTIVE, the window open, a caller asking for 30 s. */
export const vendRefreshes: Door = {
  name: "vend (refresh)",
  mode: "code",
  async setup(run) {
    await seed(run);
    await toWindow(run);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/** 2. A vend that probes: SUSPECT after a refresh whose connection was reset, its 2 s backoff over. */
export const vendProbes: Door = {
  name: "vend (probe)",
  mode: "code",
  async setup(run) {
    await seed(run);
    await toWindow(run);
    run.world.sim.addFault({ kind: "reset", endpoint: "token", clientId: run.connection.clientId, count: 1 });
    await run.invoke("setup", (invocation) => run.vend(invocation, 30));
    await expectStatus(run, ChainStatus.Suspect);
    const item = await run.item();
    run.world.clock.advanceTo((item.backoffUntilMs ?? run.world.clock.now()) + 1);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/** 3a. The scheduled refresh of a hot chain: vended, its window opening within the run's horizon. */
export const refreshHot: Door = {
  name: "scheduled refresh (hot)",
  mode: "code",
  async setup(run) {
    await seed(run);
    await run.invoke("setup", (invocation) => run.vend(invocation, 0));
    const item = await run.item();
    run.world.clock.advanceTo((item.windowOpensAtMs ?? run.world.clock.now()) - 20_000);
  },
  act: (_run, invocation) => invocation.broker.refresh.run(),
  compete: scheduled,
};

/** 3b. The scheduled refresh of an idle chain whose refresh token is due for its keep-alive (25 days). */
export const refreshKeepalive: Door = {
  name: "scheduled refresh (keep-alive)",
  mode: "code",
  async setup(run) {
    await seed(run);
    const item = await run.item();
    run.world.clock.advanceTo((item.dueAtMs ?? run.world.clock.now()) + 1_000);
  },
  act: (_run, invocation) => invocation.broker.refresh.run(),
  compete: scheduled,
};

/**
 * Another party starts a new chain for the connection's app and user behind the broker's back
 * (a code exchanged elsewhere): Exact keeps one chain per app and user, so the broker's is dead.
 */
async function supersededBehindTheBack(run: CaseRun): Promise<void> {
  await seed(run);
  const clientSecret = await run.world.secrets.clientSecret(run.connection.secretId);
  const elsewhere = await new ExactOAuthClient({ now: run.world.clock.now }).exchangeCode(
    run.world.sim.url,
    { clientId: run.connection.clientId, clientSecret },
    run.world.authorize(run.connection),
    run.connection.redirectUri,
    5_000,
  );
  if (elsewhere.kind !== "tokens") throw new Error(`setup: the other party's exchange got ${elsewhere.kind}`);
  await toWindow(run);
}

/** BROKEN (old token): the superseded chain's next refresh was refused. */
export async function brokenChain(run: CaseRun): Promise<void> {
  await supersededBehindTheBack(run);
  await run.invoke("setup", (invocation) => run.vend(invocation, 30));
  await expectStatus(run, ChainStatus.Broken);
}

/** 4. A heal in code mode: BROKEN after another party started a new chain behind the broker's back. */
export const healCode: Door = {
  name: "heal (code)",
  mode: "code",
  setup: brokenChain,
  act: (run, invocation) => invocation.broker.heal.heal(run.connection.connectionId),
  compete: heal,
};

/** 5. An implicit-mode login: a new implicit connection, logged in by the heal door (response_type=token). */
export const implicitLogin: Door = {
  name: "implicit login",
  mode: "implicit",
  async setup() {},
  act: (run, invocation) => invocation.broker.heal.heal(run.connection.connectionId),
  compete: heal,
};

/** 6. A seed: `connection seed` on a new connection with a code from Exact. */
export const seedDoor: Door = {
  name: "seed",
  mode: "code",
  async setup(run) {
    run.scratch.code = run.world.authorize(run.connection);
  },
  act: (run, invocation) =>
    invocation.broker.onboarding.seed(run.connection.connectionId, run.scratch.code ?? ""),
  compete: vend,
};

/** The connect Function URL's flow, built as its handler builds it, on the invocation's I/O. */
export function connectFlow(invocation: Invocation) {
  return createConnectFlow(invocation.broker, { keys: invocation.linkKeys, dynamo: invocation.dynamo });
}

/** The browser-binding cookie each connect case's browser holds (`name=value`, as sent back). */
const bindingCookies = new WeakMap<CaseRun, string>();

/**
 * 7. The connect callback: a one-time link confirmed (its page, which sets the browser's cookie,
 * then its button's POST with that cookie, which binds the state to it), then Exact's code and
 * the signed state back at /callback from that browser: the state's checks, its "completed"
 * marker and the seed.
 */
export const connectCallback: Door = {
  name: "connect callback",
  mode: "code",
  async setup(run) {
    const opened = await run.invoke("setup", async (invocation) => {
      const flow = connectFlow(invocation);
      const link = await flow.createConnectLink({ connectionId: run.connection.connectionId });
      const url = new URL(link.url);
      const query = Object.fromEntries(url.searchParams);
      const confirmed = await flow.confirm(query, url.origin);
      const cookie = Cookie.parse(confirmed.bindingCookie)?.cookieString() ?? "";
      const start = await flow.start({ ...confirmed.form }, [cookie], url.origin);
      return { state: new URL(start.location).searchParams.get("state") ?? "", cookie };
    });
    if (opened.kind !== "returned") throw new Error("connect setup: the link did not open");
    run.scratch.state = opened.value.state;
    bindingCookies.set(run, opened.value.cookie);
    run.scratch.code = run.world.authorize(run.connection);
  },
  async act(run, invocation) {
    const flow = connectFlow(invocation);
    const accepted = await flow.accept({ code: run.scratch.code ?? "", state: run.scratch.state ?? "" }, [
      bindingCookies.get(run) ?? "",
    ]);
    return flow.complete(accepted);
  },
  compete: vend,
};

/** A chain stored as VERIFYING: seeded while Exact's /current/Me failed, its backoff over. */
export async function verifyingChain(run: CaseRun): Promise<void> {
  run.world.sim.addFault({
    kind: "status",
    status: 503,
    endpoint: "me",
    clientId: run.connection.clientId,
    count: 1,
  });
  const code = run.world.authorize(run.connection);
  await run.invoke("setup", (invocation) =>
    invocation.broker.onboarding.seed(run.connection.connectionId, code),
  );
  await expectStatus(run, ChainStatus.Verifying);
  const item = await run.item();
  run.world.clock.advanceTo((item.backoffUntilMs ?? run.world.clock.now()) + 1);
}

/** 8a. The identity check of a VERIFYING chain, finished by a vend (no login). */
export const verifyByVend: Door = {
  name: "identity check (vend)",
  mode: "code",
  setup: verifyingChain,
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/** 8b. The identity check of a VERIFYING chain, finished by fallback-login's heal door (no login). */
export const verifyByHeal: Door = {
  name: "identity check (heal)",
  mode: "code",
  setup: verifyingChain,
  act: (run, invocation) => invocation.broker.heal.heal(run.connection.connectionId),
  compete: heal,
};

/**
 * 8c. The identity check of a VERIFYING chain whose access token expired while it waited: the
 * vend refreshes it first (TokenProtocol.refresh on a VERIFYING chain: it stays VERIFYING), then
 * checks it with the new token.
 */
export const verifyAfterExpiry: Door = {
  name: "identity check (token expired, vend)",
  mode: "code",
  async setup(run) {
    await verifyingChain(run);
    const item = await run.item();
    run.world.clock.advanceTo(Math.max(item.accessExpiresAtMs ?? 0, item.windowOpensAtMs ?? 0) + 1);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/**
 * The doors' other paths, so that every kind of call the brief names is enumerated by some clean
 * run: the serve path (the access token's decrypt, the hotness write), a vend that finds the chain
 * dead (ChainBroken, the heal trigger, the wait for the heal), the refresher's heal trigger, its
 * cooling write, and its warning for a refresh token near Exact's 30 days.
 */

/** 1b. A vend served from the stored token (no refresh): decrypt and the one hotness write. */
export const vendServes: Door = {
  name: "vend (serve)",
  mode: "code",
  setup: seed,
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/** 1c. A vend that finds the chain dead: old token, BROKEN, ChainBroken, the heal triggered and waited for. */
export const vendBreaks: Door = {
  name: "vend (dead chain)",
  mode: "code",
  setup: supersededBehindTheBack,
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/**
 * 1d. A vend of a chain whose stored refresh token does not decrypt (the access token's
 * ciphertext in its place: the encryption context names another kind). The engine checks with a
 * fresh encrypt and decrypt that the cipher itself works before it calls the chain BROKEN
 * (decrypt_failed): the only path of a door that encrypts outside a prepared sealer.
 */
export const vendUndecryptable: Door = {
  name: "vend (undecryptable token)",
  mode: "code",
  async setup(run) {
    await seed(run);
    const item = await run.item();
    await run.world.dynamo.send(
      new UpdateItemCommand({
        TableName: run.world.tableName,
        Key: marshall({ pk: connectionKey(run.connection.connectionId) }),
        UpdateExpression: "SET refreshCt = :ct",
        ExpressionAttributeValues: marshall({ ":ct": item.accessCt }),
      }),
    );
    run.forgetItem();
    await toWindow(run);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/** 3c. The scheduled refresh of a BROKEN chain: it triggers fallback-login. */
export const refreshBroken: Door = {
  name: "scheduled refresh (broken)",
  mode: "code",
  setup: brokenChain,
  act: (_run, invocation) => invocation.broker.refresh.run(),
  compete: scheduled,
};

/** 3d. The scheduled refresh of a chain vended once and idle since: it is cooled to its keep-alive date. */
export const refreshCools: Door = {
  name: "scheduled refresh (cooling)",
  mode: "code",
  async setup(run) {
    await seed(run);
    await run.invoke("setup", (invocation) => run.vend(invocation, 0));
    const item = await run.item();
    const lifetimeMs = (item.accessExpiresAtMs ?? 0) - (item.accessIssuedAtMs ?? 0);
    run.world.clock.advanceTo((item.lastVendAtMs ?? run.world.clock.now()) + lifetimeMs + 1_000);
  },
  act: (_run, invocation) => invocation.broker.refresh.run(),
  compete: scheduled,
};

/** 3e. The keep-alive of a refresh token 27 days old: RefreshTokenExpiring, then the refresh. */
export const refreshExpiring: Door = {
  name: "scheduled refresh (27 days)",
  mode: "code",
  async setup(run) {
    await seed(run);
    const item = await run.item();
    run.world.clock.advanceTo((item.refreshIssuedAtMs ?? run.world.clock.now()) + 27 * 86_400_000 + 60_000);
  },
  act: (_run, invocation) => invocation.broker.refresh.run(),
  compete: scheduled,
};
