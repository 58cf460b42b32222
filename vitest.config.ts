import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/support/leak-guard.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests start their own dynalite and simulator on 127.0.0.1; forks keep
    // each file's servers and module state apart.
    pool: "forks",
    env: { NODE_NO_WARNINGS: "1" },
    // The second one prints, once per run, how many tests were skipped for a missing
    // moto_server or cfn-lint (test/support/tool-gate.ts) and how to install it.
    reporters: ["default", "./test/support/skipped-tools-reporter.ts"],
  },
});
