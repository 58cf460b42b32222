import { afterAll, expect } from "vitest";

/**
 * Runs in every test file (vitest setupFiles): watches everything this process writes to
 * stdout and stderr, where the Powertools logger writes, and fails the file if a simulator
 * token, code or a local test secret ever appears (design invariant 8). SHOW_TEST_LOGS=1
 * shows the broker's log lines, which are otherwise kept off the report. Local secrets carry
 * "sEcReT"; simulator tokens, codes and sessions start with simAT!, simRT!, simAC!, simSS!
 * (long tokens go on in standard base64, with + / =).
 */
export const LEAK_PATTERN = /sim(?:AT|RT|AC|SS)![A-Za-z0-9_\-!.~+/=]{8}|sEcReT|JBSWY3DPEHPK3PXP/;

const leaks: string[] = [];

for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    const text = typeof chunk === "string" ? chunk : Buffer.isBuffer(chunk) ? chunk.toString("utf8") : "";
    if (LEAK_PATTERN.test(text)) leaks.push(text.slice(0, 300));
    // The broker's JSON log and metric lines are scanned, then kept off the test report unless asked for.
    if (/^\{"(level|_aws)":/.test(text) && process.env.SHOW_TEST_LOGS !== "1") return true;
    return write(chunk, ...rest);
  }) as typeof stream.write;
}

/** For tests that capture a child process's output themselves. */
export function findLeaks(text: string): string[] {
  return text.split("\n").filter((line) => LEAK_PATTERN.test(line));
}

afterAll(() => {
  expect(leaks, "a token or secret reached a log line").toEqual([]);
});
