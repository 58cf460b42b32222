import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { type Fixture, startFixture } from "../support/fixture.js";
import { findLeaks } from "../support/leak-guard.js";

const run = promisify(execFile);

/**
 * Real time, short lifetimes: the simulator issues 10 s access tokens refreshable after 5 s.
 * Separate processes share only real time, not a fake clock. The vends start 0.7 s before the
 * token expires and ask for 1 s of validity: every one of them needs the next generation, which
 * then satisfies them for 9 s however slowly a loaded machine serves 200 callers.
 */
const SHORT_LIFE = {
  sim: { accessTtlSeconds: 10, refreshAfterSeconds: 5 },
  env: { REFRESH_MARGIN_MS: "100" },
  realClock: true,
};
const AT_EXPIRY_MS = 9_300;
const MIN_VALIDITY_S = "1";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const hash = (token: string) => createHash("sha256").update(token).digest("hex");

describe("concurrent vends at expiry", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("make exactly one token call in one process, and every caller gets the same new token", async () => {
    fx = await startFixture(SHORT_LIFE);
    // One broker per caller, as 200 containers: no shared cache, no in-process coalescing.
    const brokers = Array.from({ length: 200 }, () => fx.broker({ vendOptions: { coalesce: false } }));
    await sleep(AT_EXPIRY_MS);

    const answers = await Promise.all(
      brokers.map((broker) => broker.vend.vend(fx.conn.connectionId, Number(MIN_VALIDITY_S))),
    );

    expect(new Set(answers.map((a) => a.accessToken)).size).toBe(1);
    expect(answers[0]?.generation).toBe(2);
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, old_token: 0, too_early: 0 });
  });

  it("make exactly one token call from 200 vends in 4 separate processes", async () => {
    fx = await startFixture(SHORT_LIFE);
    const startAt = Date.now() + AT_EXPIRY_MS;
    const children = Array.from({ length: 4 }, () =>
      run(
        process.execPath,
        [
          "--import",
          "tsx",
          "test/support/vend-child.ts",
          fx.conn.connectionId,
          "50",
          String(startAt),
          MIN_VALIDITY_S,
        ],
        {
          env: { ...process.env, ...fx.stack.env, NODE_NO_WARNINGS: "1", POWERTOOLS_LOG_LEVEL: "DEBUG" },
          maxBuffer: 64 * 1024 * 1024,
        },
      ),
    );
    const outputs = await Promise.all(children);

    const results = outputs.flatMap(({ stdout }) =>
      JSON.parse(stdout.trim().split("\n").at(-1) ?? "[]"),
    ) as Array<{
      generation?: number;
      tokenHash?: string;
      error?: string;
    }>;
    expect(results).toHaveLength(200);
    expect(results.filter((r) => r.error)).toEqual([]);
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
    fx = await startFixture(SHORT_LIFE);
    fx.stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", count: 1 });
    const startAt = Date.now() + AT_EXPIRY_MS;
    const deadline = startAt + 40_000;
    const children = Array.from({ length: 2 }, () =>
      run(
        process.execPath,
        [
          "--import",
          "tsx",
          "test/support/vend-child.ts",
          fx.conn.connectionId,
          "25",
          String(startAt),
          MIN_VALIDITY_S,
          "2",
          String(deadline),
        ],
        { env: { ...process.env, ...fx.stack.env, NODE_NO_WARNINGS: "1" }, maxBuffer: 64 * 1024 * 1024 },
      ),
    );
    const outputs = await Promise.all(children);

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
