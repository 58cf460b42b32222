import { ChainImport } from "../../lib/chain/chain-import.js";
import { ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import { defineCampaign } from "./campaign.js";
import type { CaseRun, Door } from "./case-run.js";
import { vend } from "./scenarios.js";

// The fault campaign (campaign.ts) for `exact-broker connection import`: a new connection takes
// over the live chain another system holds of its user, with one refresh under its lease
// (chain-import.ts). One door, in Exact's window: the too-early and dead-token answers make no
// write of their own beyond the lease's end, which the door's calls already cover.

/** The refresh token the other system holds, per case. */
const otherSystemTokens = new WeakMap<CaseRun, string>();

/**
 * Another system's consent for the case's user, made outside the broker (its calls are not the
 * door's): Exact's live chain of that user is the other system's; 571 s later its window is open.
 */
async function otherSystemHoldsTheChain(run: CaseRun): Promise<void> {
  const { world, connection } = run;
  const clientSecret = await world.secrets.clientSecret(connection.secretId);
  const started = await new ExactOAuthClient({ now: world.clock.now }).exchangeCode(
    world.sim.url,
    { clientId: connection.clientId, clientSecret },
    world.authorize(connection),
    connection.redirectUri,
    5_000,
  );
  if (started.kind !== "tokens")
    throw new Error(`import setup: the other system's consent got ${started.kind}`);
  otherSystemTokens.set(run, started.rotated.refreshToken);
  world.clock.advanceMs(571_000);
}

/** `connection import`: a NEW connection takes over the other system's live chain. */
const importDoor: Door = {
  name: "import",
  mode: "code",
  setup: otherSystemHoldsTheChain,
  act: (run, invocation) =>
    new ChainImport(invocation.broker.deps).import(
      run.connection.connectionId,
      otherSystemTokens.get(run) ?? "",
    ),
  // What may run meanwhile: a consumer's vend (the connection has no chain yet: refused at once).
  compete: vend,
};

await defineCampaign("import", [importDoor]);
