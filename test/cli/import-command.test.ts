import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { ExitCode } from "../../lib/cli/exit-codes.js";
import type { TokenInput } from "../../lib/cli/import-command.js";
import { type CliIo, runCli } from "../../lib/cli/main.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { findLeaks } from "../support/leak-guard.js";

interface Captured {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function cli(fx: Fixture, argv: string[], stdin?: TokenInput): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env: { ...fx.stack.env },
    dynamo: fx.stack.dynamo.client,
    broker: () => fx.broker(),
    ...(stdin ? { stdin } : {}),
  };
  const code = await runCli(argv, io);
  return { code, out: out.join("\n"), err: err.join("\n") };
}

function tokenFile(content: string): string {
  const file = join(mkdtempSync(join(tmpdir(), "import-")), "token.txt");
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

const importArgs = (fx: Fixture, file: string, ...more: string[]) => [
  "connection",
  "import",
  "--id",
  fx.conn.connectionId,
  "--refresh-token-file",
  file,
  ...more,
];

/** Every output line, checked for the token and for any simulator token or local secret. */
function expectNoToken(result: Captured, token: string): void {
  const all = `${result.out}\n${result.err}`;
  expect(all).not.toContain(token);
  expect(findLeaks(all)).toEqual([]);
}

describe("exact-broker connection import", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("imports from a file: says to stop the other system before acting, exits 0, never prints the token", async () => {
    fx = await startFixture({ seed: false });
    const token = await fx.chainStartedElsewhere();
    fx.clock.advance(571);

    const result = await cli(fx, importArgs(fx, tokenFile(`${token}\n`)));

    expect(result.code).toBe(ExitCode.Done);
    const [warning, done] = result.out.split("\n");
    expect(warning).toMatch(/stop the other system first/);
    expect(done).toMatch(new RegExp(`imported: .*Exact user ${fx.conn.username}`));
    expectNoToken(result, token);
    expect((await fx.record()).status).toBe(ChainStatus.Active);
  });

  it("reads the token from standard input with -", async () => {
    fx = await startFixture({ seed: false });
    const token = await fx.chainStartedElsewhere();
    fx.clock.advance(571);

    const result = await cli(fx, importArgs(fx, "-"), Readable.from([`  ${token}\r\n`]));

    expect(result.code).toBe(ExitCode.Done);
    expect((await fx.record()).refreshHash).toBe(fx.chainStats().liveRefreshHash);
  });

  it("exits 3 for a connection that does not exist, 4 for one connected before (0 with --replace)", async () => {
    fx = await startFixture();
    const token = await fx.chainStartedElsewhere();
    fx.clock.advance(571);
    const file = tokenFile(token);

    const missing = await cli(fx, ["connection", "import", "--id", "nobody", "--refresh-token-file", file]);
    const held = await cli(fx, importArgs(fx, file));
    const replaced = await cli(fx, importArgs(fx, file, "--replace"));

    expect(missing).toMatchObject({ code: ExitCode.NotFound, err: expect.stringMatching(/does not exist/) });
    expect(held).toMatchObject({ code: ExitCode.Refused, err: expect.stringMatching(/--replace/) });
    expect(replaced.code).toBe(ExitCode.Done);
    for (const result of [missing, held, replaced]) expectNoToken(result, token);
  });

  it("exits 4 for a dead token and changes nothing", async () => {
    fx = await startFixture({ seed: false });
    const result = await cli(fx, importArgs(fx, tokenFile("simRT!a-token-nobody-issued")));

    expect(result).toMatchObject({
      code: ExitCode.Refused,
      err: expect.stringMatching(/Nothing was changed/),
    });
    expect(await fx.record()).toMatchObject({ status: ChainStatus.New, generation: 0 });
  });

  it("exits 5 when too early, saying when to run it again", async () => {
    fx = await startFixture({ seed: false });
    const token = await fx.chainStartedElsewhere();
    fx.clock.advance(60);

    const result = await cli(fx, importArgs(fx, tokenFile(token)));

    expect(result.code).toBe(ExitCode.TryLater);
    expect(result.err).toMatch(/run this again at \d{4}-\d\d-\d\dT[\d:.]+Z \(in 57\d s\)/);
    expectNoToken(result, token);
  });

  it("exits 5 when the refresh got no answer: the token is stored SUSPECT, and it says so", async () => {
    fx = await startFixture({ seed: false });
    const token = await fx.chainStartedElsewhere();
    fx.clock.advance(571);
    fx.stack.sim.addFault({ kind: "reset", endpoint: "token", clientId: fx.conn.clientId, count: 1 });

    const result = await cli(fx, importArgs(fx, tokenFile(token)));

    expect(result).toMatchObject({ code: ExitCode.TryLater, err: expect.stringMatching(/SUSPECT/) });
    expect((await fx.record()).status).toBe(ChainStatus.Suspect);
    expectNoToken(result, token);
  });

  it.each([
    ["a file that cannot be read", () => "/nonexistent/token.txt", undefined, /cannot be read/],
    ["an empty file", () => tokenFile("\n"), undefined, /is empty/],
    ["empty standard input", () => "-", Readable.from([" \n"]), /standard input is empty/],
    ["a file of two words", () => tokenFile("refresh_token = x"), undefined, /more than one word/],
    [
      "a terminal on standard input",
      () => "-",
      Object.assign(Readable.from([]), { isTTY: true }),
      /terminal/,
    ],
  ])("exits 2 for %s, before anything is sent", async (_what, file, stdin, message) => {
    fx = await startFixture({ seed: false });

    const result = await cli(fx, importArgs(fx, file()), stdin);

    expect(result).toMatchObject({ code: ExitCode.BadInput, err: expect.stringMatching(message) });
    expect(result.out).toBe("");
    expect(await fx.record()).toMatchObject({ status: ChainStatus.New, generation: 0 });
  });
});
