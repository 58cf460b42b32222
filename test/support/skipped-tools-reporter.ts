import type { Reporter, TestModule } from "vitest/node";
import { installCommand, PythonTool, SEARCH_PLACES } from "./python-tools.js";

/**
 * The one line printed per missing tool at the end of a run that skipped tests for it. Its
 * wording is stable (scripts may grep for `SKIPPED`): change it only with tool-gate.test.ts.
 */
export function skippedToolLine(tool: PythonTool, skippedTests: number): string {
  const tests = skippedTests === 1 ? "1 test" : `${skippedTests} tests`;
  return (
    `SKIPPED ${tests}: ${tool} not found (${SEARCH_PLACES}). ` +
    `Install it with: ${installCommand(tool)}. With CI=true these tests fail instead.`
  );
}

/**
 * A vitest reporter (vitest.config.ts) that, once the whole run has ended, writes one loud line
 * to stderr per tool whose missing install made tool-gate.ts skip tests, with how many it skipped.
 * A reporter rather than a per-file hook: it runs once, in the main process, and sees every file.
 * https://vitest.dev/advanced/api/reporters (onTestRunEnd, TestCase.meta()).
 */
export default class SkippedToolsReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const skipped = new Map<PythonTool, number>();
    for (const module of testModules) {
      for (const test of module.children.allTests("skipped")) {
        const tool = test.meta().skippedForMissingTool;
        if (tool !== undefined) skipped.set(tool, (skipped.get(tool) ?? 0) + 1);
      }
    }
    for (const tool of Object.values(PythonTool)) {
      const count = skipped.get(tool);
      if (count !== undefined) process.stderr.write(`\n${skippedToolLine(tool, count)}\n`);
    }
  }
}
