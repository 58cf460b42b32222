import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { ExitCode } from "../../lib/cli/exit-codes.js";
import { type CliIo, runCli } from "../../lib/cli/main.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { forceStatus } from "../support/force-status.js";
import { findLeaks, LEAK_PATTERN } from "../support/leak-guard.js";

const run = promisify(execFile);

interface Captured {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function cli(fx: Fixture, ...argv: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env: { ...fx.stack.env },
    dynamo: fx.stack.dynamo.client,
    broker: () => fx.broker(),
  };
  const code = await runCli(argv, io);
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("exact-broker", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("adds, seeds, vends, reports and removes a connection", async () => {
    fx = await startFixture({ seed: false });
    fx.stack.sim.addApp({
      clientId: "app-x",
      clientSecret: "cs-sEcReT-app-x-0123456789",
      redirectUris: ["https://cb.example.com/x"],
    });
    fx.stack.writeSecret("exact/x", { clientSecret: "cs-sEcReT-app-x-0123456789" });

    const added = await cli(
      fx,
      "connection",
      "add",
      "--id",
      "x",
      "--client-id",
      "app-x",
      "--base-url",
      fx.stack.sim.url,
      "--redirect-uri",
      "https://cb.example.com/x",
      "--secret-id",
      "exact/x",
    );
    expect(added).toMatchObject({
      code: ExitCode.Done,
      out: expect.stringContaining("exact-broker connect --id x"),
    });

    const code = fx.stack.sim.authorize({
      clientId: "app-x",
      username: fx.conn.username,
      redirectUri: "https://cb.example.com/x",
    });
    const seeded = await cli(fx, "connection", "seed", "--id", "x", "--code", code);
    expect(seeded).toMatchObject({ code: ExitCode.Done, out: expect.stringContaining(fx.conn.username) });

    const vended = await cli(fx, "vend", "--id", "x");
    expect(vended.code).toBe(ExitCode.Done);
    expect(JSON.parse(vended.out)).toMatchObject({ tokenType: "Bearer", generation: 1 });
    expect(vended.out).not.toContain("simRT!");

    const status = await cli(fx, "status", "--id", "x", "--json");
    expect(JSON.parse(status.out)).toMatchObject({
      status: "ACTIVE",
      generation: 1,
      exactUser: fx.conn.username,
      lease: null,
    });
    expect(findLeaks(status.out)).toEqual([]);
    const human = await cli(fx, "status", "--id", "x");
    expect(human.out).toMatch(/generation\s+1/);

    const list = await cli(fx, "connection", "list");
    expect(list.out).toMatch(/^x\s+ACTIVE\s+1/m);

    expect((await cli(fx, "connection", "remove", "--id", "x")).code).toBe(ExitCode.Done);
    expect((await cli(fx, "status", "--id", "x")).code).toBe(ExitCode.NotFound);
  });

  it("refuses a second connection for the same user with exit 4 and says where the tokens went", async () => {
    fx = await startFixture();
    await fx.stack.addConnection("dup", { clientId: fx.conn.clientId, username: "someone-else@example.com" });
    const code = fx.stack.sim.authorize({
      clientId: fx.conn.clientId,
      username: fx.conn.username,
      redirectUri: fx.conn.redirectUri,
    });

    const seeded = await cli(fx, "connection", "seed", "--id", "dup", "--code", code);

    expect(seeded.code).toBe(ExitCode.Refused);
    expect(seeded.err).toContain(`stored on "${fx.conn.connectionId}"`);
  });

  it.each([
    [["connection", "add", "--id", "x"], ExitCode.BadInput, /--client-id is required/],
    [
      [
        "connection",
        "add",
        "--id",
        "y",
        "--client-id",
        "c",
        "--base-url",
        "https://evil.example.com",
        "--redirect-uri",
        "https://a.example.com",
        "--secret-id",
        "s",
      ],
      ExitCode.BadInput,
      /not one of Exact's hosts/,
    ],
    [["vend", "--id", "bad id"], ExitCode.BadInput, /--id/],
    [["vend", "--id", "nobody"], ExitCode.NotFound, /does not exist/],
    [["frobnicate"], ExitCode.BadInput, /unknown command/],
    [["status", "--nope"], ExitCode.BadInput, /Unknown option/],
  ])("exits %# with the right code and a message saying what to do", async (argv, exitCode, message) => {
    fx = await startFixture({ seed: false });
    const result = await cli(fx, ...argv);
    expect(result.code).toBe(exitCode);
    expect(result.err).toMatch(message);
  });

  it("heals a broken chain at an operator's request", async () => {
    fx = await startFixture();
    await forceStatus(fx.stack, fx.conn.connectionId, {
      status: ChainStatus.ReauthRequired,
      statusReason: "bad_credentials",
      atGeneration: 1,
    });

    const healed = await cli(fx, "heal", "--id", fx.conn.connectionId);

    expect(healed).toMatchObject({ code: ExitCode.Done, out: expect.stringContaining("generation 2") });
    expect((await fx.record()).status).toBe("ACTIVE");
  });

  it("refuses a heal with exit 4 when the secret cannot log in", async () => {
    fx = await startFixture();
    const clientSecret = await fx.broker().deps.secrets.clientSecret(fx.conn.secretId);
    fx.stack.writeSecret(fx.conn.secretId, { clientSecret });

    const result = await cli(fx, "heal", "--id", fx.conn.connectionId);

    expect(result).toMatchObject({
      code: ExitCode.Refused,
      err: expect.stringContaining("no username, password and totpSecret"),
    });
  });

  it("prints a one-time connect link for a connection whose redirect URI is the connect callback", async () => {
    fx = await startFixture({ seed: false });
    fx.stack.sim.addApp({
      clientId: "app-c",
      clientSecret: "cs-sEcReT-app-c-0123456789",
      redirectUris: ["https://connect.example.com/callback"],
    });
    fx.stack.writeSecret("exact/c", { clientSecret: "cs-sEcReT-app-c-0123456789" });
    await cli(
      fx,
      "connection",
      "add",
      "--id",
      "c",
      "--client-id",
      "app-c",
      "--base-url",
      fx.stack.sim.url,
      "--redirect-uri",
      "https://connect.example.com/callback",
      "--secret-id",
      "exact/c",
    );

    const link = await cli(fx, "connect", "--id", "c", "--connect-url", "https://connect.example.com");

    expect(link.code).toBe(ExitCode.Done);
    expect(link.out).toMatch(/^https:\/\/connect\.example\.com\/start\?c=c&n=[^&]+&e=\d+&s=/m);
  });

  it("answers ReauthRequired with exit 4 for a connection never seeded", async () => {
    fx = await startFixture({ seed: false });
    const result = await cli(fx, "vend", "--id", fx.conn.connectionId);
    expect(result).toMatchObject({ code: ExitCode.Refused, err: expect.stringContaining("connection seed") });
  });

  it("creates the table, and works from the built package", async () => {
    fx = await startFixture({ seed: false });
    const env = { ...process.env, ...fx.stack.env, TABLE_NAME: "fresh-table", NODE_NO_WARNINGS: "1" };

    const created = await run(process.execPath, ["dist/lib/cli/bin.js", "table", "create"], { env });
    expect(created.stdout).toContain("table fresh-table is ready");
    const again = await run(process.execPath, ["dist/lib/cli/bin.js", "table", "create"], { env });
    expect(again.stdout).toContain("already exists");
    const listed = await run(process.execPath, ["dist/lib/cli/bin.js", "connection", "list"], { env });
    expect(listed.stdout).toContain("no connections");
  });
});

describe("exact-broker connection add with a secret", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("stores the secret from a JSON file, then the connection uses it", async () => {
    fx = await startFixture({ seed: false });
    fx.stack.sim.addApp({
      clientId: "app-f",
      clientSecret: "cs-sEcReT-app-f-0123456789",
      redirectUris: ["https://cb.example.com/f"],
    });
    const file = join(mkdtempSync(join(tmpdir(), "secret-")), "secret.json");
    writeFileSync(file, JSON.stringify({ clientSecret: "cs-sEcReT-app-f-0123456789" }));

    const added = await cli(
      fx,
      "connection",
      "add",
      "--id",
      "f",
      "--client-id",
      "app-f",
      "--base-url",
      fx.stack.sim.url,
      "--redirect-uri",
      "https://cb.example.com/f",
      "--secret-id",
      "exact/f",
      "--secret-file",
      file,
    );

    expect(added).toMatchObject({
      code: ExitCode.Done,
      out: expect.stringContaining("created secret exact/f"),
    });
    expect(added.out).not.toMatch(LEAK_PATTERN);
    const code = fx.stack.sim.authorize({
      clientId: "app-f",
      username: fx.conn.username,
      redirectUri: "https://cb.example.com/f",
    });
    expect((await cli(fx, "connection", "seed", "--id", "f", "--code", code)).code).toBe(ExitCode.Done);
  });

  it("asks for the secret's fields, hiding the password and TOTP secret", async () => {
    fx = await startFixture({ seed: false });
    const asked: Array<[string, boolean]> = [];
    const answers = [
      "cs-sEcReT-p-0123456789",
      "someone@example.com",
      "pw-sEcReT-p-0123456789",
      "JBSW Y3DP EHPK 3PXP",
    ];
    const io: CliIo = {
      out: () => undefined,
      err: () => undefined,
      env: { ...fx.stack.env },
      dynamo: fx.stack.dynamo.client,
      prompt: async (question, { hidden }) => {
        asked.push([question, hidden]);
        return answers.shift() ?? "";
      },
    };

    const code = await runCli(
      [
        "connection",
        "add",
        "--id",
        "p",
        "--client-id",
        "app-p",
        "--base-url",
        fx.stack.sim.url,
        "--redirect-uri",
        "https://cb.example.com/p",
        "--secret-id",
        "exact/p",
        "--prompt-secret",
      ],
      io,
    );

    expect(code).toBe(ExitCode.Done);
    expect(asked.map(([, hidden]) => hidden)).toEqual([true, false, true, true]);
    // Split: the client secret alone under its ID, the login credentials in a secret of their own.
    const file = JSON.parse(readFileSync(fx.stack.env.LOCAL_SECRETS_FILE ?? "", "utf8"));
    expect(file["exact/p"]).toEqual({ clientSecret: "cs-sEcReT-p-0123456789" });
    expect(file["exact-token-broker/logins/p"]).toEqual({
      username: "someone@example.com",
      password: "pw-sEcReT-p-0123456789",
      totpSecret: "JBSWY3DPEHPK3PXP",
    });
  });
});
