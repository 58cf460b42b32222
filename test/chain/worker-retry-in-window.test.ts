import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import type { ScriptSpec } from "../../lib/sim/scripts.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { MemoryRefreshQueue } from "../support/memory-refresh-queue.js";

/** The window opens this long after a token arrives (the simulator's 600 s tokens, 29 s window). */
const WINDOW_OPENS_S = 571;
const WORKER_TIMEOUT_MS = 55_000;

/** Exact's answer to a refresh before the access token's last 30 s (../shared/exact-online.md). */
function tooEarly(clientId: string, count = 1): ScriptSpec {
  return {
    endpoint: "token",
    clientId,
    count,
    status: 400,
    headers: { Reason: "TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired" },
    json: { error: "access_denied", error_description: "Rate limit exceeded: access_token not expired" },
  };
}

/**
 * A hot chain whose refresh Exact refuses for now at its window (too early by Exact's clock, a
 * 503): the dispatcher's next tick is a minute away and the window 29 s long, so the worker tries
 * again in the same run, within its horizon and deadline.
 */
describe("refresh-worker: a refusal at the window is retried inside the window", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  /** A hot chain, queued by the dispatcher 40 s before its window, and its message as the worker gets it at the window. */
  async function queuedAtWindow() {
    fx = await startFixture();
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(WINDOW_OPENS_S - 40);
    const queue = new MemoryRefreshQueue();
    await fx.broker({ refreshQueue: queue }).dispatch?.run();
    fx.clock.advance(40);
    const before = await fx.record();
    return { messages: queue.drain(), expiresAtMs: before.accessExpiresAtMs ?? 0 };
  }

  it("refreshes after a too-early answer, before the token expires", async () => {
    const { messages, expiresAtMs } = await queuedAtWindow();
    fx.stack.sim.addScript(tooEarly(fx.conn.clientId));

    const summary = await fx.broker().refreshWorker.run(messages, fx.clock.now() + WORKER_TIMEOUT_MS);

    expect(summary.outcomes).toMatchObject({ refreshed: 1, skipped: 0 });
    const after = await fx.record();
    expect(after.generation).toBe(2);
    expect(after.accessIssuedAtMs ?? 0).toBeLessThan(expiresAtMs);
    expect(fx.chainStats().tokenRequests).toMatchObject({ scripted: 1, refreshed: 1 });
  });

  it("refreshes after a 503, before the token expires", async () => {
    const { messages, expiresAtMs } = await queuedAtWindow();
    fx.stack.sim.addScript({ endpoint: "token", clientId: fx.conn.clientId, status: 503, body: "busy" });

    const summary = await fx.broker().refreshWorker.run(messages, fx.clock.now() + WORKER_TIMEOUT_MS);

    expect(summary.outcomes).toMatchObject({ refreshed: 1 });
    expect((await fx.record()).accessIssuedAtMs ?? 0).toBeLessThan(expiresAtMs);
  });

  it("retries once: two too-early answers (each counted by Exact) and the chain waits for the next tick", async () => {
    const { messages } = await queuedAtWindow();
    fx.stack.sim.addScript(tooEarly(fx.conn.clientId, 5));

    const summary = await fx.broker().refreshWorker.run(messages, fx.clock.now() + WORKER_TIMEOUT_MS);

    expect(summary.outcomes).toMatchObject({ refreshed: 0, skipped: 1 });
    expect((await fx.record()).generation).toBe(1);
    // Scripted answers are the refusals (the simulator counts them apart from what it processes).
    expect(fx.chainStats().tokenRequests.scripted).toBe(2);
  });

  it("does not retry an unknown outcome: the chain stays SUSPECT for the next holder's one probe", async () => {
    const { messages } = await queuedAtWindow();
    // The connection drops after the request was sent: Exact may have rotated the chain.
    fx.stack.sim.addFault({ kind: "reset", endpoint: "token", clientId: fx.conn.clientId, count: 2 });
    const startMs = fx.clock.now();

    const summary = await fx.broker().refreshWorker.run(messages, startMs + WORKER_TIMEOUT_MS);

    expect(summary.outcomes).toMatchObject({ refreshed: 0, skipped: 1 });
    const after = await fx.record();
    expect(after.status).toBe(ChainStatus.Suspect);
    expect(after.generation).toBe(1);
    // One call, no probe in the same run: a blip does not become a broken chain and a login.
    expect(fx.chainStats().tokenRequests.fault_reset).toBe(1);
  });

  it("still retries when its timer wakes a little early (the backoff ends at the retry time exactly)", async () => {
    const { messages } = await queuedAtWindow();
    fx.stack.sim.addScript({ endpoint: "token", clientId: fx.conn.clientId, status: 503, body: "busy" });
    const early = (ms: number) => fx.clock.sleep(ms > 5 ? ms - 5 : ms);

    const summary = await fx
      .broker({ sleep: early })
      .refreshWorker.run(messages, fx.clock.now() + WORKER_TIMEOUT_MS);

    expect(summary.outcomes).toMatchObject({ refreshed: 1 });
  });

  it("does not retry after a probe's too-early answer: Exact may have said so before it looked at the token", async () => {
    const { messages } = await queuedAtWindow();
    // Exact rotates the chain and the answer is lost: SUSPECT, the next holder probes once.
    fx.stack.sim.addFault({
      kind: "rotate_then_drop",
      endpoint: "token",
      clientId: fx.conn.clientId,
      count: 1,
    });
    await fx.broker().refreshWorker.run(messages, fx.clock.now() + WORKER_TIMEOUT_MS);
    expect((await fx.record()).status).toBe(ChainStatus.Suspect);
    fx.clock.advance(3);
    fx.stack.sim.addScript(tooEarly(fx.conn.clientId));

    await fx.broker().refreshWorker.run(messages, fx.clock.now() + WORKER_TIMEOUT_MS);

    // The probe, and no second call with the refresh token the lost call rotated.
    expect(fx.chainStats().tokenRequests).toMatchObject({ scripted: 1, old_token: 0 });
  });

  it("does not retry a blocked user: the block's own re-check, 30 minutes on, stands", async () => {
    const { messages } = await queuedAtWindow();
    const blocked = {
      clientId: fx.conn.clientId,
      count: 10,
      status: 403,
      headers: { Reason: "BlockedUser" },
    };
    fx.stack.sim.addScript({ ...blocked, endpoint: "token", json: { error: "forbidden" } });
    fx.stack.sim.addScript({ ...blocked, endpoint: "me", json: { error: "forbidden" } });
    const meBefore = fx.chainStats().meRequests.scripted ?? 0;

    await fx.broker().refreshWorker.run(messages, fx.clock.now() + WORKER_TIMEOUT_MS);

    expect((await fx.record()).status).toBe(ChainStatus.Blocked);
    expect(fx.chainStats().tokenRequests.scripted).toBe(1);
    expect(fx.chainStats().meRequests.scripted ?? 0).toBe(meBefore);
  });

  it("does not retry past its deadline: with too little time left, one call and no sleep", async () => {
    const { messages } = await queuedAtWindow();
    fx.stack.sim.addScript(tooEarly(fx.conn.clientId, 5));
    const startMs = fx.clock.now();
    const config = fx.broker().config;

    // Just enough time for one lease (lastStartMs = deadline − lease − skew bound), none for a second 5 s later.
    const summary = await fx.broker().refreshWorker.run(messages, startMs + config.leaseMs + 5_000);

    expect(summary.outcomes).toMatchObject({ skipped: 1 });
    expect(fx.chainStats().tokenRequests.scripted).toBe(1);
  });
});
