import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PythonTool } from "./python-tools.js";
import { skippedToolLine } from "./skipped-tools-reporter.js";
import { isCi } from "./tool-gate.js";

// The gate (tool-gate.ts) and its reporter, proven on a real vitest child run over the fixtures in
// fixtures/tool-gate/ (4 tests need moto_server, 1 needs cfn-lint, 1 needs neither), with the
// project's own vitest configuration. Each child gets a clean environment: PATH holds no tool,
// HOME is a scratch directory, so neither PATH nor ~/.pyenv/shims finds the machine's own tools.

const VITEST = join(process.cwd(), "node_modules", "vitest", "vitest.mjs");
const FIXTURE_CONFIG = "test/support/fixtures/tool-gate/vitest.config.ts";

interface ChildRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runFixtures(env: Record<string, string>): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    // --no-cache: the three children and this run would otherwise write vitest's results cache at once.
    const child = spawn(process.execPath, [VITEST, "run", "--no-cache", "--config", FIXTURE_CONFIG], {
      env: { NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.once("error", reject);
    child.once("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** The lines of a run that begin like the reporter's skip line. */
const skipLines = (text: string): string[] => text.split("\n").filter((line) => line.startsWith("SKIPPED"));

let scratch: string;
let local: ChildRun;
let ci: ChildRun;
let installed: ChildRun;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "tool-gate-test-"));
  const emptyBin = join(scratch, "bin");
  const bare = join(scratch, "bare-home");
  const withShims = join(scratch, "home");
  const shims = join(withShims, ".pyenv", "shims");
  await Promise.all([mkdir(emptyBin), mkdir(bare), mkdir(shims, { recursive: true })]);
  // Found is all the gate asks of a tool; the fixtures do not run it.
  for (const tool of Object.values(PythonTool)) {
    await writeFile(join(shims, tool), "#!/bin/sh\nexit 0\n");
    await chmod(join(shims, tool), 0o755);
  }
  // Three short runs (about a second each) at once.
  [local, ci, installed] = await Promise.all([
    runFixtures({ PATH: emptyBin, HOME: bare }),
    runFixtures({ PATH: emptyBin, HOME: bare, CI: "true" }),
    runFixtures({ PATH: emptyBin, HOME: withShims }),
  ]);
}, 60_000);

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe("describeWithTool", () => {
  describe("without CI, tools missing", () => {
    it("skips the gated tests, runs the rest and passes", () => {
      expect(local.status).toBe(0);
      expect(local.stdout).toMatch(/Tests\s+1 passed \| 5 skipped \(6\)/);
    });

    it("prints one line per missing tool for the whole run, counting every file, with the install command", () => {
      expect(skipLines(local.stderr)).toEqual([
        skippedToolLine(PythonTool.MotoServer, 4),
        skippedToolLine(PythonTool.CfnLint, 1),
      ]);
      expect(skipLines(local.stdout)).toEqual([]);
    });
  });

  describe("with CI=true, tools missing", () => {
    it("fails the run, each gated block with the install hint, and prints no skip line", () => {
      const output = ci.stdout + ci.stderr;

      expect(ci.status).toBe(1);
      expect(output).toContain("Failed Suites 3");
      expect(output).toMatch(/PythonToolMissing: moto_server .*pip install "moto\[server\]" && pyenv rehash/);
      expect(output).toMatch(/PythonToolMissing: cfn-lint .*pip install cfn-lint && pyenv rehash/);
      expect(skipLines(output)).toEqual([]);
    });
  });

  describe("tools found (in ~/.pyenv/shims, as a non-interactive shell has them)", () => {
    it("runs every gated test and prints no skip line", () => {
      expect(installed.status).toBe(0);
      expect(installed.stdout).toMatch(/Tests\s+6 passed \(6\)/);
      expect(skipLines(installed.stdout + installed.stderr)).toEqual([]);
    });
  });
});

describe("skippedToolLine", () => {
  it("keeps its wording: count, tool, where it looked, the install command, what CI=true does", () => {
    expect(skippedToolLine(PythonTool.MotoServer, 9)).toBe(
      "SKIPPED 9 tests: moto_server not found (PATH, $PYENV_ROOT/shims, ~/.pyenv/shims). " +
        'Install it with: pip install "moto[server]" && pyenv rehash. With CI=true these tests fail instead.',
    );
    expect(skippedToolLine(PythonTool.CfnLint, 1)).toMatch(/^SKIPPED 1 test: cfn-lint not found/);
  });
});

describe("isCi", () => {
  it.each([
    [{ CI: "true" }, true],
    [{ CI: "TRUE" }, true],
    [{ CI: "1" }, true],
    [{ CI: "false" }, false],
    [{ CI: "" }, false],
    [{}, false],
  ])("reads %j as %s", (env, expected) => {
    expect(isCi(env)).toBe(expected);
  });
});
