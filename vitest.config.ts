import { availableParallelism } from "node:os";
import { configDefaults, defineConfig } from "vitest/config";
import CampaignFirstSequencer from "./test/support/sequencer.js";

/**
 * Files that synthesize the CDK app (and run cfn-lint on it, or its grants' custom resource against
 * a dynalite of their own through their own clients): no broker, no environment changed, nothing
 * kept in a module of lib/ between files. Loading aws-cdk-lib and its first synth cost seconds per
 * process, several times a synth itself, so these share their workers (`isolate: false`): each
 * worker loads it once. Each file still builds its own apps, stacks and tables. (table-access runs
 * brokers, whose modules keep process-wide state such as the secrets provider: it stays isolated.)
 */
const SYNTH_ONLY = [
  "test/infra/app-context.test.ts",
  "test/infra/broker-construct.test.ts",
  "test/infra/broker-stack.test.ts",
  "test/infra/cfn-lint.test.ts",
  "test/infra/function-timing.test.ts",
  "test/infra/least-privilege.test.ts",
  "test/infra/rate-budget-table.test.ts",
  "test/infra/roles.test.ts",
  "test/infra/vend-grants.test.ts",
  "test/history/history-settings.test.ts",
  "test/review10/grant-vend-dropping-a-connection-revokes-the-next.test.ts",
  "test/review10/grant-vend-shared-role-removal-revokes-the-other.test.ts",
  "test/review10/grant-vend-upgrade-from-positional-grants.test.ts",
];

export default defineConfig({
  test: {
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
    // The fault campaign's files, the longest, start first (test/support/sequencer.ts).
    sequence: { sequencer: CampaignFirstSequencer },
    env: { NODE_NO_WARNINGS: "1" },
    // The second one prints, once per run, how many tests were skipped for a missing
    // moto_server or cfn-lint (test/support/tool-gate.ts) and how to install it.
    reporters: ["default", "./test/support/skipped-tools-reporter.ts"],
    projects: [
      { extends: true, test: { name: "synth", include: SYNTH_ONLY, isolate: false } },
      {
        extends: true,
        test: {
          name: "main",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, ...SYNTH_ONLY],
        },
      },
    ],
  },
});
