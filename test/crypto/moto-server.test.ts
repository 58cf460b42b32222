import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startMotoServer } from "../support/moto-server.js";
import { PythonToolMissing } from "../support/python-tools.js";
import { describeWithMoto } from "../support/tool-gate.js";

// The helper the moto-backed tests stand on (test/support/moto-server.ts): how it finds
// moto_server, what it says when it cannot, and that close() really stops the server. Only the
// last block needs a real moto_server; the others put fake ones in place.

const SAVED_ENV = { PATH: process.env.PATH, HOME: process.env.HOME, PYENV_ROOT: process.env.PYENV_ROOT };
let scratch: string;

/** A moto_server that prints a few lines and exits 1, as a broken install would. */
async function brokenMotoServerIn(directory: string): Promise<void> {
  await mkdir(directory, { recursive: true });
  const script = join(directory, "moto_server");
  await writeFile(
    script,
    '#!/bin/sh\necho "line one"\necho "ModuleNotFoundError: No module named flask" >&2\nexit 1\n',
  );
  await chmod(script, 0o755);
}

async function startError(): Promise<Error> {
  return startMotoServer().then(
    async (server) => {
      await server.close();
      throw new Error("expected startMotoServer to fail");
    },
    (error: Error) => error,
  );
}

function setEnv(env: { PATH: string; HOME: string; PYENV_ROOT?: string }): void {
  process.env.PATH = env.PATH;
  process.env.HOME = env.HOME;
  if (env.PYENV_ROOT === undefined) delete process.env.PYENV_ROOT;
  else process.env.PYENV_ROOT = env.PYENV_ROOT;
}

describe("startMotoServer", () => {
  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), "moto-server-test-"));
  });

  afterEach(async () => {
    for (const [name, value] of Object.entries(SAVED_ENV)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await rm(scratch, { recursive: true, force: true });
  });

  it("says what is missing and how to install it when moto_server is nowhere to be found", async () => {
    setEnv({ PATH: join(scratch, "bin"), HOME: join(scratch, "home") });

    const error = await startError();

    expect(error).toBeInstanceOf(PythonToolMissing);
    expect(error.message).toMatch(
      /moto_server .*was not found on PATH, in \$PYENV_ROOT\/shims or in ~\/\.pyenv\/shims/,
    );
    expect(error.message).toContain(join(scratch, "home", ".pyenv", "shims"));
    expect(error.message).toContain('pip install "moto[server]" && pyenv rehash');
  });

  it.each([
    ["PATH", (root: string) => ({ dir: join(root, "bin"), env: { PATH: join(root, "bin"), HOME: root } })],
    [
      "$PYENV_ROOT/shims",
      (root: string) => ({
        dir: join(root, "pyenv", "shims"),
        env: { PATH: join(root, "empty"), HOME: root, PYENV_ROOT: join(root, "pyenv") },
      }),
    ],
    [
      "$HOME/.pyenv/shims",
      (root: string) => ({
        dir: join(root, ".pyenv", "shims"),
        env: { PATH: join(root, "empty"), HOME: root },
      }),
    ],
  ])("finds moto_server in %s, and reports the last lines of a failed start", async (_label, layout) => {
    const { dir, env } = layout(scratch);
    await brokenMotoServerIn(dir);
    setEnv(env);

    const error = await startError();

    expect(error.message).toMatch(/^moto_server did not start on port \d+: it exited/);
    expect(error.message).toContain("line one");
    expect(error.message).toContain("ModuleNotFoundError: No module named flask");
  });
});

describeWithMoto("startMotoServer with the real moto_server", () => {
  it("serves HTTP until close(), after which its port refuses connections", async () => {
    const server = await startMotoServer();
    const before = await fetch(`${server.endpoint}/moto-api/`);

    await server.close();

    expect(before.status).toBe(200);
    await expect(fetch(`${server.endpoint}/moto-api/`)).rejects.toThrow();
  });
});
