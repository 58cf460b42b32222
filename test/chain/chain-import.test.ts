import { afterEach, describe, expect, it } from "vitest";
import { ChainImport } from "../../lib/chain/chain-import.js";
import { ChainStatus, DivisionPinnedBy } from "../../lib/chain/chain-record.js";
import { HistoryDoor, HistoryOutcome } from "../../lib/chain/history-entry.js";
import { hashToken } from "../../lib/chain/token-seal.js";
import { ConnectionNotFound, ReauthRequired } from "../../lib/errors.js";
import { ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import type { DemoConnection } from "../../lib/local/local-stack.js";
import { type Fixture, startFixture } from "../support/fixture.js";

/**
 * `exact-broker connection import`'s engine (chain-import.ts) against the simulator over HTTP and
 * dynalite: another system holds a live chain of the connection's user, and the broker takes it
 * over with one refresh under the connection's lease.
 */

/** The other system: its own OAuth client, holding the chain of `conn`'s user after a consent. */
async function otherSystem(fx: Fixture, conn: DemoConnection = fx.conn) {
  const oauth = new ExactOAuthClient({ now: fx.clock.now });
  const creds = {
    clientId: conn.clientId,
    clientSecret: await fx.broker().deps.secrets.clientSecret(conn.secretId),
  };
  const code = fx.stack.sim.authorize({
    clientId: conn.clientId,
    username: conn.username,
    redirectUri: conn.redirectUri,
  });
  const started = await oauth.exchangeCode(fx.stack.sim.url, creds, code, conn.redirectUri, 5_000);
  if (started.kind !== "tokens") throw new Error(`the other system's consent got ${started.kind}`);
  return {
    refreshToken: started.rotated.refreshToken,
    /** The other system's next refresh of `token`, as its cron job would make it. */
    refresh: (token: string) => oauth.refresh(fx.stack.sim.url, creds, token, 5_000),
  };
}

function importer(fx: Fixture) {
  return new ChainImport(fx.broker().deps);
}

function tokenRequests(fx: Fixture): number {
  return Object.values(fx.chainStats().tokenRequests).reduce((sum, n) => sum + n, 0);
}

describe("ChainImport", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("takes over a live chain: one refresh, stored, checked with /current/Me, division pinned; the other copy is dead", async () => {
    fx = await startFixture({ seed: false });
    const other = await otherSystem(fx);
    fx.clock.advance(571);

    const outcome = await importer(fx).import(fx.conn.connectionId, other.refreshToken);

    expect(outcome).toMatchObject({
      kind: "imported",
      result: { connectionId: fx.conn.connectionId, exactUserName: fx.conn.username, generation: 1 },
    });
    const record = await fx.record();
    expect(record).toMatchObject({
      status: ChainStatus.Active,
      exactUserName: fx.conn.username,
      divisionPinnedBy: DivisionPinnedBy.Consent,
      refreshHash: fx.chainStats().liveRefreshHash,
    });
    expect(record.division).toEqual(expect.any(Number));
    expect(fx.chainStats().tokenRequests.refreshed).toBe(1);
    expect(await other.refresh(other.refreshToken)).toMatchObject({
      kind: "chain_dead",
      reason: "old_token",
    });
    expect((await fx.broker().vend.vend(fx.conn.connectionId, 30)).generation).toBe(1);
    const history = await fx.store().history.read(await fx.record(), 10);
    expect(history.filter((e) => e.door === HistoryDoor.Import).map((e) => e.outcome)).toEqual(
      expect.arrayContaining([HistoryOutcome.ChainStarted, HistoryOutcome.Verified]),
    );
  });

  it("refuses a connection that does not exist, or one in implicit mode", async () => {
    fx = await startFixture({ seed: false });

    const implicit = await fx.stack.addConnection("implicit", { mode: "implicit" });

    await expect(importer(fx).import("nobody", "simRT!whatever-token")).rejects.toThrow(ConnectionNotFound);
    await expect(importer(fx).import(implicit.connectionId, "simRT!whatever-token")).rejects.toThrow(
      /implicit mode/,
    );
  });

  it("refuses a connection connected before, sending nothing, unless replace is given", async () => {
    fx = await startFixture();
    const other = await otherSystem(fx);
    fx.clock.advance(571);
    const before = tokenRequests(fx);

    const refused = await importer(fx).import(fx.conn.connectionId, other.refreshToken);

    expect(refused).toEqual({ kind: "holds_chain", status: ChainStatus.Active, generation: 1 });
    expect(tokenRequests(fx)).toBe(before);
    const replaced = await importer(fx).import(fx.conn.connectionId, other.refreshToken, { replace: true });
    expect(replaced).toMatchObject({ kind: "imported", result: { generation: 2 } });
    expect((await fx.record()).refreshHash).toBe(fx.chainStats().liveRefreshHash);
  });

  it("too early: changes nothing and says when Exact accepts it; then it does", async () => {
    fx = await startFixture({ seed: false });
    const other = await otherSystem(fx);
    fx.clock.advance(100);
    const sentAtMs = fx.clock.now();

    const early = await importer(fx).import(fx.conn.connectionId, other.refreshToken);

    expect(early).toMatchObject({ kind: "too_early", stored: false });
    const retryAtMs = early.kind === "too_early" ? early.retryAtMs : 0;
    expect(retryAtMs - sentAtMs).toBeGreaterThanOrEqual(570_000);
    expect(await fx.record()).toMatchObject({ status: ChainStatus.New, generation: 0 });
    expect((await fx.record()).refreshCt).toBeUndefined();
    fx.clock.advance((retryAtMs - fx.clock.now()) / 1000);
    expect(await importer(fx).import(fx.conn.connectionId, other.refreshToken)).toMatchObject({
      kind: "imported",
    });
  });

  it("too early with a new refresh token in the refusal: stored first, then refreshed and checked by itself", async () => {
    fx = await startFixture({ seed: false, sim: { variants: { tooEarlyCarriesRefreshToken: true } } });
    const other = await otherSystem(fx);
    fx.clock.advance(100);

    const early = await importer(fx).import(fx.conn.connectionId, other.refreshToken);

    expect(early).toMatchObject({ kind: "too_early", stored: true });
    const stored = await fx.record();
    expect(stored).toMatchObject({
      status: ChainStatus.Verifying,
      refreshHash: fx.chainStats().liveRefreshHash,
    });
    expect(stored.backoffUntilMs).toBe(early.kind === "too_early" ? early.retryAtMs : 0);
    expect(await other.refresh(other.refreshToken)).toMatchObject({ kind: "chain_dead" });
    fx.clock.advance(((stored.backoffUntilMs ?? 0) - fx.clock.now()) / 1000 + 1);
    const answer = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    expect(answer.generation).toBe(2);
    expect(await fx.record()).toMatchObject({ status: ChainStatus.Active, exactUserName: fx.conn.username });
  });

  it.each([
    ["already used by the other system", "old_token", true],
    ["unknown to Exact", "invalid_chain", false],
  ])("a token %s is refused and nothing changes", async (_what, reason, used) => {
    fx = await startFixture({ seed: false });
    const other = await otherSystem(fx);
    fx.clock.advance(571);
    if (used) await other.refresh(other.refreshToken);
    const token = used ? other.refreshToken : "simRT!not-a-token-Exact-ever-issued";
    const before = await fx.record();

    const outcome = await importer(fx).import(fx.conn.connectionId, token);

    expect(outcome).toEqual({ kind: "token_refused", reason });
    const after = await fx.record();
    expect(after).toMatchObject({ status: ChainStatus.New, generation: 0 });
    expect([after.refreshCt, after.leaseOwner, after.history]).toEqual([
      undefined,
      undefined,
      before.history,
    ]);
  });

  it("no answer, not processed: the token is stored SUSPECT, one probe proves it alive, checked before it is served", async () => {
    fx = await startFixture({ seed: false });
    const other = await otherSystem(fx);
    fx.clock.advance(571);
    fx.stack.sim.addFault({ kind: "reset", endpoint: "token", clientId: fx.conn.clientId, count: 1 });

    const outcome = await importer(fx).import(fx.conn.connectionId, other.refreshToken);

    expect(outcome).toEqual({ kind: "unknown_outcome", generation: 1 });
    expect(await fx.record()).toMatchObject({
      status: ChainStatus.Suspect,
      refreshHash: hashToken(other.refreshToken),
      verification: { source: "seed" },
    });
    expect((await fx.record()).accessCt).toBeUndefined();
    const answer = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    expect(answer.generation).toBe(2);
    expect(await fx.record()).toMatchObject({
      status: ChainStatus.Active,
      exactUserName: fx.conn.username,
      refreshHash: fx.chainStats().liveRefreshHash,
    });
    expect(fx.chainStats().meRequests.ok).toBeGreaterThanOrEqual(1);
  });

  it("no answer after Exact rotated: SUSPECT, the probe finds it dead, the connection goes back to NEW", async () => {
    fx = await startFixture({ seed: false });
    const other = await otherSystem(fx);
    fx.clock.advance(571);
    fx.stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", clientId: fx.conn.clientId });

    expect(await importer(fx).import(fx.conn.connectionId, other.refreshToken)).toMatchObject({
      kind: "unknown_outcome",
    });

    await expect(fx.broker().vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ReauthRequired);
    expect(fx.chainStats().tokenRequests.old_token).toBe(1);
    const record = await fx.record();
    expect(record).toMatchObject({ status: ChainStatus.New });
    expect(record.refreshCt).toBeUndefined();
  });

  it("a chain of a user another connection holds goes to that connection (one connection per user and app)", async () => {
    fx = await startFixture();
    const second = await fx.stack.addConnection("second", {
      clientId: fx.conn.clientId,
      username: `${fx.conn.username}.2`,
    });
    const other = await otherSystem(fx);
    fx.clock.advance(571);

    const outcome = await importer(fx).import(second.connectionId, other.refreshToken);

    expect(outcome).toMatchObject({
      kind: "imported",
      result: { connectionId: fx.conn.connectionId, redirectedFrom: "second" },
    });
    expect((await fx.stack.store().get("second"))?.status).toBe(ChainStatus.New);
    expect((await fx.record()).refreshHash).toBe(fx.chainStats().liveRefreshHash);
  });
});
