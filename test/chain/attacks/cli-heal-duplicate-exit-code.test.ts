import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { ExitCode } from "../../../lib/cli/exit-codes.js";
import { type CliIo, runCli } from "../../../lib/cli/main.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

async function cli(fx: Fixture, ...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    env: { ...fx.stack.env },
    dynamo: fx.stack.dynamo.client,
    broker: () => fx.broker(),
  };
  const code = await runCli(argv, io);
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/**
 * README (exact-broker): "Exit codes: ... 4 refused (duplicate chain, re-authorization needed),
 * 5 try again later". lib/cli/main.ts `heal` maps a failed heal to 4 only for
 * errorType "ReauthRequired"; a DuplicateChain (the connection is now REAUTH_REQUIRED,
 * duplicate_user: retrying cannot help) exits 5, "try again later".
 */
describe("exact-broker heal exit codes", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("a heal that ends in duplicate_user (REAUTH_REQUIRED) exits 4, not 5", async () => {
    fx = await startFixture({ seed: false });
    const username = "shared@example.com";
    const clientId = "app-shared";
    await fx.stack.seed(await fx.stack.addConnection("conn-b", { username, clientId }));
    await fx.stack.addConnection("conn-i", { username, clientId, mode: "implicit" });

    const healed = await cli(fx, "heal", "--id", "conn-i");

    expect((await fx.stack.store().get("conn-i"))?.status).toBe(ChainStatus.ReauthRequired);
    expect(healed.code, healed.err).toBe(ExitCode.Refused);
  });
});
