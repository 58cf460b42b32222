import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readRefreshToken } from "../../lib/cli/import-command.js";
import { runCli } from "../../lib/cli/main.js";
import { ValidationError } from "../../lib/errors.js";

// `connection import` never prints a token, not even one typed where it does not belong: in place
// of the file name (`--refresh-token-file "$TOKEN"`) or after the command.

const TOKEN = "Gcp7!IAAAAGtqZHNmbGtqc2RsZmtqc2RsZmtqc2xka2Zq.import-echo-refresh-token-lookalike";

async function run(argv: string[]): Promise<{ code: number; output: string }> {
  const lines: string[] = [];
  const code = await runCli(argv, { out: (l) => lines.push(l), err: (l) => lines.push(l), env: {} });
  return { code, output: lines.join("\n") };
}

describe("exact-broker connection import, with the token typed where it does not belong", () => {
  it("exits 2 without echoing a token given as --refresh-token-file", async () => {
    const { code, output } = await run([
      "connection",
      "import",
      "--id",
      "acme",
      "--refresh-token-file",
      TOKEN,
    ]);

    expect(code).toBe(2);
    expect(output).toContain("--refresh-token-file cannot be read (ENOENT)");
    expect(output).not.toContain(TOKEN);
  });

  it("exits 2 without echoing a token given as a positional argument", async () => {
    const { code, output } = await run(["connection", "import", "--id", "acme", TOKEN]);

    expect(code).toBe(2);
    expect(output).toContain('unknown command "connection import <argument>"');
    expect(output).not.toContain(TOKEN);
  });
});

describe("readRefreshToken", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "import-token-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const none = Readable.from([]);

  it.each([
    ["a device that never ends", "/dev/zero"],
    ["a directory", "."],
  ])("refuses %s as not a regular file, without reading it", async (_what, file) => {
    await expect(readRefreshToken(file, none)).rejects.toThrow(
      new ValidationError(
        "--refresh-token-file is not a regular file: name a file holding the token, or - for standard input",
      ),
    );
  });

  it("refuses a file larger than a token by its size", async () => {
    const file = join(dir, "large.txt");
    await writeFile(file, "x".repeat(16 * 1024 + 1));

    await expect(readRefreshToken(file, none)).rejects.toThrow(/holds more than 16384 bytes/);
  });

  it("reads the token of a regular file, without its final newline", async () => {
    const file = join(dir, "token.txt");
    await writeFile(file, `${TOKEN}\n`);

    expect(await readRefreshToken(file, none)).toBe(TOKEN);
  });
});
