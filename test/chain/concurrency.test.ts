import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { type Fixture, startFixture } from "../support/fixture.js";
import { findLeaks } from "../support/leak-guard.js";

/**
 * The fixture's fake clock jumps to 572 s after seeding: Exact's refresh window is open and the
 * token has 28 s left. Every vend asks for 30 s, so every one of them needs the next generation,
 * which then satisfies them for 570 s however slowly a loaded machine serves 200 callers; no
 * test waits in real time for a token to age. Polls shorter than a second pass in real time
 * (realShortSleeps): 200 pollers each jumping one shared clock would age the tokens instead.
 * Child processes run on the same clock: they get its offset (vend-child.ts).
 */
const AT_WINDOW = { realShortSleeps: true };
const WINDOW_OPEN_S = 572;
const MIN_VALIDITY_S = 30;
const READY_MARKER = "@@vend-child-ready";
const hash = (token: string) => createHash("sha256").update(token).digest("hex");

interface ChildOutput {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs test/support/vend-child.ts once per argv list, waits until every child has loaded and
 * built its brokers, then starts them all at the same moment, and returns what they printed.
 */
async function runVendChildren(
  fx: Fixture,
  argvs: ReadonlyArray<readonly string[]>,
  env: Readonly<Record<string, string>> = {},
): Promise<ChildOutput[]> {
  const children = argvs.map((argv) => {
    const child = spawn(process.execPath, ["--import", "tsx", "test/support/vend-child.ts", ...argv], {
      env: {
        ...process.env,
        ...fx.stack.env,
        NODE_NO_WARNINGS: "1",
        CLOCK_OFFSET_MS: String(fx.clock.offsetMs),
        ...env,
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    const ready = new Promise<void>((resolve, reject) => {
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk;
        if (stderr.includes(READY_MARKER)) resolve();
      });
      child.on("close", (code) => reject(new Error(`vend-child exited (${code}) before it was ready`)));
    });
    const done = new Promise<ChildOutput>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code) =>
        code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`vend-child exited with ${code}`)),
      );
    });
    // Awaited below; a child that dies before the start must not also surface as unhandled.
    done.catch(() => undefined);
    return { child, ready, done };
  });
  await Promise.all(children.map((c) => c.ready));
  const startAt = Date.now() + 100;
  for (const { child } of children) child.stdin.end(`${startAt}\n`);
  return Promise.all(children.map((c) => c.done));
}

describe("concurrent vends at expiry", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("make exactly one token call in one process, and every caller gets the same new token", async () => {
    fx = await startFixture(AT_WINDOW);
    // One broker per caller, as 200 containers: no shared cache, no in-process coalescing.
    const brokers = Array.from({ length: 200 }, () => fx.broker({ vendOptions: { coalesce: false } }));
    fx.clock.advance(WINDOW_OPEN_S);

    const answers = await Promise.all(
      brokers.map((broker) => broker.vend.vend(fx.conn.connectionId, MIN_VALIDITY_S)),
    );

    expect(new Set(answers.map((a) => a.accessToken)).size).toBe(1);
    expect(answers[0]?.generation).toBe(2);
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, old_token: 0, too_early: 0 });
  });

  it("make exactly one token call from 200 vends in 4 separate processes", async () => {
    fx = await startFixture(AT_WINDOW);
    fx.clock.advance(WINDOW_OPEN_S);

    const outputs = await runVendChildren(
      fx,
      Array.from({ length: 4 }, () => [fx.conn.connectionId, "50", String(MIN_VALIDITY_S)]),
      { POWERTOOLS_LOG_LEVEL: "DEBUG" },
    );

    const results = outputs.flatMap(({ stdout }) =>
      JSON.parse(stdout.trim().split("\n").at(-1) ?? "[]"),
    ) as Array<{
      generation?: number;
      tokenHash?: string;
      errors: string[];
    }>;
    expect(results).toHaveLength(200);
    expect(results.flatMap((r) => r.errors)).toEqual([]);
    expect(new Set(results.map((r) => r.tokenHash)).size).toBe(1);
    expect(new Set(results.map((r) => r.generation))).toEqual(new Set([2]));
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, old_token: 0, too_early: 0 });
    const own = await fx.broker().vend.vend(fx.conn.connectionId, 0);
    expect(results[0]?.tokenHash).toBe(hash(own.accessToken));
    for (const { stdout, stderr } of outputs) expect(findLeaks(stdout + stderr)).toEqual([]);
  }, 60_000);
});

describe("a chain killed by rotate-then-drop while 50 consumers in 2 processes vend", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("heals with exactly one login, and every consumer then gets the new token", async () => {
    fx = await startFixture(AT_WINDOW);
    fx.stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", count: 1 });
    fx.clock.advance(WINDOW_OPEN_S);

    // Each caller vends every 200 ms until it holds generation 2, for at most 40 s.
    const outputs = await runVendChildren(
      fx,
      Array.from({ length: 2 }, () => [fx.conn.connectionId, "25", String(MIN_VALIDITY_S), "2", "40000"]),
    );

    const results = outputs.flatMap(({ stdout }) =>
      JSON.parse(stdout.trim().split("\n").at(-1) ?? "[]"),
    ) as Array<{
      generation?: number;
      tokenHash?: string;
      errors: string[];
    }>;
    expect(results).toHaveLength(50);
    expect(new Set(results.map((r) => r.generation))).toEqual(new Set([2]));
    expect(new Set(results.map((r) => r.tokenHash)).size).toBe(1);
    // While the chain was suspect and then healing, callers were told to come back, never to re-authorize.
    expect(new Set(results.flatMap((r) => r.errors))).not.toContain("ReauthRequired");
    expect(fx.stack.sim.stats().logins[fx.conn.username]).toMatchObject({ success: 1, bad_totp: 0 });
    expect(fx.chainStats().tokenRequests).toMatchObject({
      fault_rotate_then_drop: 1,
      old_token: 1,
      code_exchanged: 2,
    });
    for (const { stdout, stderr } of outputs) expect(findLeaks(stdout + stderr)).toEqual([]);
  }, 90_000);
});
