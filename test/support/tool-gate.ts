import { beforeAll, describe } from "vitest";
import { findPythonTool, PythonTool, requirePythonTool } from "./python-tools.js";

declare module "vitest" {
  interface TaskMeta {
    /** Set on the tests a gate skipped because this tool is missing (read by skipped-tools-reporter.ts). */
    skippedForMissingTool?: PythonTool;
  }
}

/**
 * Whether the tests run in CI, where every gated test is required. `CI=true` is what issue 10
 * and GitHub Actions set; `1` is what some other runners set.
 */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return ["true", "1"].includes((env.CI ?? "").toLowerCase());
}

/**
 * A `describe` whose tests need `tool` (found like {@link findPythonTool}).
 * - Tool found: the block runs as usual.
 * - Tool missing, `CI=true`: the block runs and every test in it fails with the install hint
 *   ({@link PythonToolMissing}): CI must never pass without these tests.
 * - Tool missing elsewhere: the block is skipped and its tests are marked, so that
 *   skipped-tools-reporter.ts prints one line for the whole run with their count and the install
 *   command.
 *
 * Put everything that starts the tool (`beforeAll(startMotoServer)`) inside the block: a
 * file-level hook would run, and fail, even when the block is skipped.
 */
export function describeWithTool(tool: PythonTool, name: string, body: () => void): void {
  const skip = !isCi() && findPythonTool(tool) === undefined;
  describe(name, skip ? { skip, meta: { skippedForMissingTool: tool } } : {}, () => {
    // Registered before the body's hooks, so it runs first and its message is the one reported.
    beforeAll(() => {
      requirePythonTool(tool);
    });
    body();
  });
}

/** {@link describeWithTool} for tests against `moto_server`. */
export function describeWithMoto(name: string, body: () => void): void {
  describeWithTool(PythonTool.MotoServer, name, body);
}

/** {@link describeWithTool} for tests that run `cfn-lint`. */
export function describeWithCfnLint(name: string, body: () => void): void {
  describeWithTool(PythonTool.CfnLint, name, body);
}
