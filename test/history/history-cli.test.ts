import { afterEach, describe, expect, it } from "vitest";
import { ExitCode } from "../../lib/cli/exit-codes.js";
import type { HistoryRow } from "../../lib/cli/history-command.js";
import { type CliIo, runCli } from "../../lib/cli/main.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { findLeaks } from "../support/leak-guard.js";

const WINDOW = 572;
const CALLER = "arn:aws:sts::123456789012:assumed-role/consumer/session-1";

async function cli(fx: Fixture, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env: { ...fx.stack.env },
    dynamo: fx.stack.dynamo.client,
    broker: () => fx.broker(),
  };
  const code = await runCli(argv, io);
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("exact-broker history", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  /** A seeded connection refreshed once by a consumer's vend: three entries. Returns the vended token. */
  async function refreshedOnce(): Promise<string> {
    fx = await startFixture();
    fx.clock.advance(WINDOW);
    return (await fx.broker().vend.vend(fx.conn.connectionId, 30, { caller: CALLER })).accessToken;
  }

  it("prints a table, newest first, with when, generation, door, outcome, status, hash and caller; no token", async () => {
    const accessToken = await refreshedOnce();
    const record = await fx.record();

    const shown = await cli(fx, "history", "--id", fx.conn.connectionId);

    expect(shown.code).toBe(ExitCode.Done);
    const [header, ...rows] = shown.out.split("\n");
    expect(header?.split(/\s{2,}/)).toEqual([
      "WHEN",
      "GEN",
      "DOOR",
      "PURPOSE",
      "OUTCOME",
      "REASON",
      "STATUS",
      "PEER",
      "REFRESH HASH",
      "CALLER",
    ]);
    expect(rows.map((row) => row.split(/\s+/).slice(1, 5))).toEqual([
      ["2", "vend", "refresh", "refreshed"],
      ["1", "seed", "verify", "verified"],
      ["1", "seed", "onboard", "chain_started"],
    ]);
    expect(rows[0]).toContain(record.refreshHash);
    expect(rows[0]).toMatch(new RegExp(`${CALLER}$`));
    expect(shown.out).not.toContain(accessToken);
    expect(findLeaks(shown.out)).toEqual([]);
  });

  it("prints one JSON array with --json, absent fields as null; no token", async () => {
    const accessToken = await refreshedOnce();
    const record = await fx.record();

    const shown = await cli(fx, "history", "--id", fx.conn.connectionId, "--json");

    expect(shown.code).toBe(ExitCode.Done);
    const rows = JSON.parse(shown.out) as HistoryRow[];
    expect(rows).toHaveLength(3);
    expect(rows[0]).toEqual({
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      generation: 2,
      door: "vend",
      purpose: "refresh",
      outcome: "refreshed",
      reason: null,
      status: "ACTIVE",
      caller: CALLER,
      refreshHash: record.refreshHash,
      peer: null,
    });
    expect(rows.map((row) => row.outcome)).toEqual(["refreshed", "verified", "chain_started"]);
    expect(shown.out).not.toContain(accessToken);
    expect(findLeaks(shown.out)).toEqual([]);
  });

  it("shows at most --limit entries", async () => {
    await refreshedOnce();

    const shown = await cli(fx, "history", "--id", fx.conn.connectionId, "--json", "--limit", "1");

    expect((JSON.parse(shown.out) as HistoryRow[]).map((row) => row.outcome)).toEqual(["refreshed"]);
  });

  it.each([["0"], ["-1"], ["1001"], ["ten"]])("refuses --limit %j with exit 2", async (limit) => {
    fx = await startFixture({ seed: false });

    const shown = await cli(fx, "history", "--id", fx.conn.connectionId, `--limit=${limit}`);

    expect(shown.code).toBe(ExitCode.BadInput);
    expect(shown.err).toMatch(/--limit must be a whole number from 1 to 1000/);
  });

  it("exits 3 for an unknown connection", async () => {
    fx = await startFixture({ seed: false });

    const shown = await cli(fx, "history", "--id", "nobody");

    expect(shown.code).toBe(ExitCode.NotFound);
    expect(shown.err).toMatch(/ConnectionNotFound: connection "nobody" does not exist/);
  });

  it("says so when a connection has no history yet", async () => {
    fx = await startFixture({ seed: false });

    const shown = await cli(fx, "history", "--id", fx.conn.connectionId);

    expect(shown.code).toBe(ExitCode.Done);
    expect(shown.out).toMatch(/has no history yet \(generation 0, NEW\)/);
  });
});
