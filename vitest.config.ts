import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/support/leak-guard.ts"],
    testTimeout: 30_000,
    // Many files synthesize the whole stack in beforeAll (seven functions, some bundled): tens of
    // seconds when the other worker is busy too.
    hookTimeout: 120_000,
    // Integration tests start their own dynalite and simulator on 127.0.0.1; forks keep
    // each file's servers and module state apart.
    pool: "forks",
    // Vitest's default in a run is one worker fewer than the CPUs: a single worker on a 2-CPU CI
    // machine. Most files wait on loopback HTTP (dynalite, the simulator, moto), so one worker per
    // CPU keeps both busy.
    maxWorkers: Math.max(2, availableParallelism()),
    env: { NODE_NO_WARNINGS: "1" },
    // The second one prints, once per run, how many tests were skipped for a missing
    // moto_server or cfn-lint (test/support/tool-gate.ts) and how to install it.
    reporters: ["default", "./test/support/skipped-tools-reporter.ts"],
  },
});
