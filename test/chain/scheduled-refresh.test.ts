import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import type { InProcessHealTrigger } from "../../lib/chain/heal-trigger.js";
import { MemoryPublisher } from "../../lib/events/event-publishers.js";
import { countingDynamo } from "../../lib/local/counting-dynamo.js";
import { type Fixture, startFixture } from "../support/fixture.js";

const DAY_S = 86_400;

describe("ScheduledRefresh", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("refreshes a hot chain inside its window, waiting in-process for it to open", async () => {
    fx = await startFixture();
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(540);

    const summary = await fx.broker().refresh.run();

    expect(summary.outcomes.refreshed).toBe(1);
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, too_early: 0 });
    const record = await fx.record();
    expect(record.generation).toBe(2);
    // The vend that follows is served at once from the new generation.
    const vended = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    expect(vended.generation).toBe(2);
  });

  it("finds due chains through the sparse index, never a scan", async () => {
    fx = await startFixture();
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(540);
    const { client, counts } = countingDynamo(fx.stack.dynamo.endpoint);

    await fx.broker({ dynamo: client }).refresh.run();

    expect(counts.Scan).toBeUndefined();
    // The due index's two partitions: the main one and catch-up.
    expect(counts.Query).toBe(2);
  });

  it("leaves a chain nobody vends alone, and cools it two token lifetimes after its last vend", async () => {
    fx = await startFixture();
    const idle = await fx.broker().refresh.run();
    expect(idle.due).toBe(0);

    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(540);
    expect((await fx.broker().refresh.run()).outcomes.refreshed).toBe(1);
    // Still hot at the next window: its vend is 1,140 s old, within two lifetimes (timing.ts HOT_LIFETIMES).
    fx.clock.advance(600);
    expect((await fx.broker().refresh.run()).outcomes.refreshed).toBe(1);
    fx.clock.advance(600);
    const cooled = await fx.broker().refresh.run();

    expect(cooled.outcomes).toMatchObject({ refreshed: 0, cooled: 1 });
    expect(fx.chainStats().tokenRequests.refreshed).toBe(2);
  });

  it("marks a chain hot once per token lifetime, not on every generation's first vend", async () => {
    fx = await startFixture();
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    const marked = (await fx.record()).lastVendAtMs;
    fx.clock.advance(540);
    await fx.broker().refresh.run();
    // The new generation's first vend, 570 s after the recorded one: no write.
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    expect((await fx.record()).lastVendAtMs).toBe(marked);
    // Past a lifetime: the next vend records itself.
    fx.clock.advance(60);
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    expect((await fx.record()).lastVendAtMs).toBeGreaterThan((marked ?? 0) + 600_000);
  });

  it("keeps an idle chain alive before its refresh token reaches 30 days", async () => {
    fx = await startFixture();
    fx.clock.advance(24 * DAY_S);
    expect((await fx.broker().refresh.run()).due).toBe(0);

    fx.clock.advance(1 * DAY_S + 60);
    const summary = await fx.broker().refresh.run();

    expect(summary.outcomes.keepalive).toBe(1);
    const record = await fx.record();
    expect(record.generation).toBe(2);
    expect(fx.clock.now() - (record.refreshIssuedAtMs ?? 0)).toBeLessThan(60_000);
  });

  it("is harmless when two runs overlap: one refresh", async () => {
    fx = await startFixture();
    await fx.broker().vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(572);

    const [a, b] = await Promise.all([fx.broker().refresh.run(), fx.broker().refresh.run()]);

    expect(a.outcomes.refreshed + b.outcomes.refreshed).toBe(1);
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, old_token: 0 });
  });

  it("triggers the heal of a broken chain it finds in its index", async () => {
    fx = await startFixture({ realShortSleeps: true });
    fx.stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", count: 1 });
    const noHeal = { healTrigger: { trigger: () => undefined, handedOff: async () => undefined } };
    await fx.broker(noHeal).vend.vend(fx.conn.connectionId, 30);
    fx.clock.advance(572);
    await fx.broker(noHeal).refresh.run();
    fx.clock.advance(3);
    await fx.broker(noHeal).refresh.run();
    expect((await fx.record()).status).toBe(ChainStatus.Broken);

    const refresher = fx.broker();
    const summary = await refresher.refresh.run();
    await (refresher.healTrigger as InProcessHealTrigger).settled();

    expect(summary.outcomes.heal_triggered).toBe(1);
    expect(await fx.record()).toMatchObject({ status: ChainStatus.Active, generation: 2 });
  });

  it("raises RefreshTokenExpiring when a refresh token passes 27 days (the keep-alive is failing)", async () => {
    fx = await startFixture();
    const events = new MemoryPublisher();
    fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "token", probability: 1 });
    fx.clock.advance(27 * DAY_S + 60);

    await fx.broker({ events }).refresh.run();

    expect(events.events).toEqual([
      {
        type: "RefreshTokenExpiring",
        detail: expect.objectContaining({ connectionId: fx.conn.connectionId, reason: "keepalive_failing" }),
      },
    ]);
  });
});
