import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { FUNCTION_NODE_OPTIONS } from "../../lib/infra/bundling.js";

const DRIVER = fileURLToPath(new URL("./invoke-bundle.mjs", import.meta.url));
const RESULT_MARKER = "@@result ";

/** What one invocation of a bundle in a fresh process answered, and everything it printed. */
export type Invocation<T> =
  | { readonly ok: true; readonly value: T; readonly output: string }
  | {
      readonly ok: false;
      readonly errorType: string;
      readonly errorMessage: string;
      readonly output: string;
    };

/**
 * Runs `handler(event, context)` of a built bundle in a new Node process (invoke-bundle.mjs),
 * with exactly `env` as its environment (nothing inherited from the test process, so no stray
 * AWS settings), plus the NODE_OPTIONS the stack deploys with. `timeoutMs` is the function's
 * configured timeout: the context's getRemainingTimeInMillis() counts down from it, as in
 * Lambda, and the doors plan their work by it (a login needs more than a vend's 25 s).
 */
export function invokeBundle<T>(
  file: string,
  event: unknown,
  env: Readonly<Record<string, string>>,
  timeoutMs: number,
): Promise<Invocation<T>> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [DRIVER, file, JSON.stringify(event), String(timeoutMs)],
      {
        env: { ...env, NODE_OPTIONS: FUNCTION_NODE_OPTIONS, NODE_NO_WARNINGS: "1" },
        // Lambda would stop the function at its timeout; the process gets a little more to report.
        timeout: timeoutMs + 10_000,
        maxBuffer: 32 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        const line = stdout.split("\n").find((l) => l.startsWith(RESULT_MARKER));
        if (!line) {
          reject(new Error(`bundle ${file} printed no result (${error?.message ?? "exit 0"})`));
          return;
        }
        resolve({ ...(JSON.parse(line.slice(RESULT_MARKER.length)) as object), output } as Invocation<T>);
      },
    );
  });
}
