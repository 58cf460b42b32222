import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus, LeasePurpose } from "../../lib/chain/chain-record.js";
import { TOKEN_ERRORS_PER_HOUR } from "../../lib/chain/error-budget.js";
import { ChainBusy, ConnectionNotFound, ExactUnavailable, Throttled } from "../../lib/errors.js";
import { countingDynamo, resetCounts } from "../../lib/local/counting-dynamo.js";
import { type Fixture, startFixture } from "../support/fixture.js";

/** Seconds after seeding at which the fixture's chain may first be refreshed (600 − 30 + 1). */
const WINDOW_OPENS = 571;

describe("VendDoor", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  describe("the current token", () => {
    it("is served without a token call while it has the requested validity", async () => {
      fx = await startFixture();
      const broker = fx.broker();
      const answer = await broker.vend.vend(fx.conn.connectionId, 30);
      expect(broker.vend.leaseWaits).toBe(0);

      expect(answer).toMatchObject({
        tokenType: "Bearer",
        generation: 1,
        baseUrl: fx.stack.sim.url,
        division: expect.any(Number),
      });
      expect(Date.parse(answer.expiresAt) - fx.clock.now()).toBeGreaterThan(590_000);
      expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
    });

    it("is answered from memory with no DynamoDB call on a warm container", async () => {
      fx = await startFixture();
      const { client, counts } = countingDynamo(fx.stack.dynamo.endpoint);
      const broker = fx.broker({ dynamo: client });
      await broker.vend.vend(fx.conn.connectionId, 30);
      resetCounts(counts);

      await broker.vend.vend(fx.conn.connectionId, 30);

      expect(counts).toEqual({});
    });

    it("costs one read when uncached, plus one hotness write per generation", async () => {
      fx = await startFixture();
      const { client, counts } = countingDynamo(fx.stack.dynamo.endpoint);

      await fx.broker({ dynamo: client }).vend.vend(fx.conn.connectionId, 30);
      expect(counts).toEqual({ GetItem: 1, UpdateItem: 1 });
      resetCounts(counts);
      await fx.broker({ dynamo: client }).vend.vend(fx.conn.connectionId, 30);

      expect(counts).toEqual({ GetItem: 1 });
    });
  });

  describe("refreshing", () => {
    it("refreshes once the window is open: the item and its app read, 2 writes, and the app's success noted", async () => {
      fx = await startFixture();
      const { client, counts } = countingDynamo(fx.stack.dynamo.endpoint);
      const broker = fx.broker({ dynamo: client });
      const first = await broker.vend.vend(fx.conn.connectionId, 30);
      fx.clock.advance(WINDOW_OPENS + 1);
      resetCounts(counts);

      const second = await broker.vend.vend(fx.conn.connectionId, 30);

      expect(second.generation).toBe(2);
      expect(second.accessToken).not.toBe(first.accessToken);
      // Reads: the item, the app's outage state. Writes: acquire, commit, the generation's
      // history item (history-store.ts), and the app's first success of five minutes
      // (app-states.ts SUCCESS_RESOLUTION_MS; later refreshes skip it).
      expect(counts).toEqual({ GetItem: 2, UpdateItem: 4 });
      expect(fx.chainStats()).toMatchObject({ generation: 2, tokenRequests: { refreshed: 1, too_early: 0 } });
    });

    it("waits for the window when it opens in a moment, and is never too early", async () => {
      fx = await startFixture();
      fx.clock.advance(WINDOW_OPENS - 0.6);
      const before = fx.clock.now();

      const answer = await fx.broker().vend.vend(fx.conn.connectionId, 30);

      expect(answer.generation).toBe(2);
      expect(fx.clock.now() - before).toBeGreaterThanOrEqual(500);
      expect(fx.chainStats().tokenRequests.too_early).toBe(0);
    });

    it("never waits when the current token still has the requested validity", async () => {
      fx = await startFixture();
      fx.clock.advance(WINDOW_OPENS - 0.6);
      const before = fx.clock.offsetMs;

      const answer = await fx.broker().vend.vend(fx.conn.connectionId, 10);

      expect(answer.generation).toBe(1);
      expect(fx.clock.offsetMs).toBe(before);
    });

    it("keeps serving consecutive generations", async () => {
      fx = await startFixture();
      const broker = fx.broker();
      for (let generation = 2; generation <= 5; generation += 1) {
        fx.clock.advance(WINDOW_OPENS + 1);
        expect((await broker.vend.vend(fx.conn.connectionId, 30)).generation).toBe(generation);
      }
      expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 4, old_token: 0, too_early: 0 });
    });
  });

  describe("too early", () => {
    it("never marks the chain dead: Throttled for validity the token lacks, the current token for what it has", async () => {
      // A broker whose window is wider than Exact's refreshes too early.
      fx = await startFixture({ env: { REFRESH_WINDOW_SECONDS: "60" } });
      fx.clock.advance(545);

      const error = await fx
        .broker()
        .vend.vend(fx.conn.connectionId, 60)
        .catch((e: unknown) => e);

      expect(error).toBeInstanceOf(Throttled);
      expect((error as Throttled).retryAfterSeconds).toBeGreaterThan(0);
      expect(fx.chainStats().tokenRequests.too_early).toBe(1);
      const record = await fx.record();
      expect(record.status).toBe(ChainStatus.Active);
      expect(record.tokenErrors?.errorAtMs).toHaveLength(1);
      // The 55 s the token still has are served to a caller that asks for no more, with no token call.
      expect((await fx.broker().vend.vend(fx.conn.connectionId, 30)).generation).toBe(1);
      expect(fx.chainStats().tokenRequests.too_early).toBe(1);
    });

    it("persists a refresh token carried by a too-early answer", async () => {
      fx = await startFixture({
        env: { REFRESH_WINDOW_SECONDS: "60" },
        sim: { variants: { tooEarlyCarriesRefreshToken: true } },
      });
      const before = await fx.record();
      fx.clock.advance(545);

      await expect(fx.broker().vend.vend(fx.conn.connectionId, 60)).rejects.toThrow(Throttled);

      const after = await fx.record();
      expect(after.generation).toBe(2);
      expect(after.refreshHash).not.toBe(before.refreshHash);
      expect(after.refreshHash).toBe(fx.chainStats().liveRefreshHash);
      expect(fx.chainStats().generation).toBe(2);
      // The persisted token is the live one: the next refresh in the window works.
      fx.clock.advance(40);
      expect((await fx.broker().vend.vend(fx.conn.connectionId, 60)).generation).toBe(3);
      expect(fx.chainStats().tokenRequests.old_token).toBe(0);
    });
  });

  describe("outcome unknown", () => {
    it("turns rotate-then-drop into SUSPECT, then BROKEN after one probe, with no retry loop (heal aside)", async () => {
      fx = await startFixture();
      fx.stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", count: 1 });
      fx.clock.advance(WINDOW_OPENS + 1);
      const broker = fx.broker();

      // 28 s are left: the 30 s asked for cannot be had until the chain is checked.
      const lost = await broker.vend.vend(fx.conn.connectionId, 30).catch((e: unknown) => e);
      expect(lost).toBeInstanceOf(ExactUnavailable);
      expect((lost as ExactUnavailable).retryAfterSeconds).toBeGreaterThan(0);
      expect((await fx.record()).status).toBe(ChainStatus.Suspect);
      // Whoever asks for no more than the token has still gets it, with no token call.
      expect((await fx.broker().vend.vend(fx.conn.connectionId, 0)).generation).toBe(1);

      fx.clock.advance(3);
      const noHeal = {
        healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
        vendOptions: { waitMs: 1_000 },
      };
      await expect(fx.broker(noHeal).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ChainBusy);
      const record = await fx.record();
      expect(record).toMatchObject({ status: ChainStatus.Broken, statusReason: "lost_answer" });

      for (let i = 0; i < 5; i += 1) {
        fx.clock.advance(10);
        await expect(fx.broker(noHeal).vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ChainBusy);
      }
      const requests = fx.chainStats().tokenRequests;
      expect(requests.fault_rotate_then_drop + requests.old_token).toBe(2);
    });

    it("recovers with its one probe when the lost call never reached the chain", async () => {
      fx = await startFixture();
      fx.stack.sim.addFault({ kind: "reset", endpoint: "token", count: 1 });
      fx.clock.advance(WINDOW_OPENS + 1);

      await expect(fx.broker().vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ExactUnavailable);
      expect((await fx.record()).status).toBe(ChainStatus.Suspect);
      fx.clock.advance(3);
      const answer = await fx.broker().vend.vend(fx.conn.connectionId, 30);

      expect(answer.generation).toBe(2);
      expect((await fx.record()).status).toBe(ChainStatus.Active);
      expect(fx.chainStats().tokenRequests).toMatchObject({ fault_reset: 1, refreshed: 1 });
    });
  });

  describe("Exact failing", () => {
    it("backs off on 5xx: ExactUnavailable for validity the token lacks, the current token for what it has", async () => {
      fx = await startFixture();
      fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "token", probability: 1 });
      fx.clock.advance(WINDOW_OPENS + 1);

      const first = await fx
        .broker()
        .vend.vend(fx.conn.connectionId, 30)
        .catch((e: unknown) => e);
      expect(first).toBeInstanceOf(ExactUnavailable);
      expect((first as ExactUnavailable).retryAfterSeconds).toBeGreaterThan(0);
      const calls = fx.chainStats().tokenRequests.fault_status;
      expect(calls).toBe(1);
      // Inside the backoff: no second call; the 28 s left go to a caller asking for 20.
      await expect(fx.broker().vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ExactUnavailable);
      expect(await fx.broker().vend.vend(fx.conn.connectionId, 20)).toMatchObject({ generation: 1 });
      expect(fx.chainStats().tokenRequests.fault_status).toBe(calls);

      fx.clock.advance(30);
      const error = await fx
        .broker()
        .vend.vend(fx.conn.connectionId, 30)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ExactUnavailable);
      expect((error as ExactUnavailable).retryAfterSeconds).toBeGreaterThan(0);
    });

    it("reports a 429 as Throttled once the current token is gone", async () => {
      fx = await startFixture();
      fx.stack.sim.addFault({ kind: "rate_limit", endpoint: "token", probability: 1 });
      fx.clock.advance(600);

      await expect(fx.broker().vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(Throttled);
      expect((await fx.record()).status).toBe(ChainStatus.Active);
    });

    it("retries a refused connection later without suspecting the chain", async () => {
      fx = await startFixture();
      fx.stack.sim.addFault({ kind: "refuse", durationMs: 400 });
      fx.clock.advance(WINDOW_OPENS + 1);

      await expect(fx.broker().vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(ExactUnavailable);
      expect((await fx.record()).status).toBe(ChainStatus.Active);
      expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 600));
      fx.clock.advance(5);

      expect((await fx.broker().vend.vend(fx.conn.connectionId, 30)).generation).toBe(2);
    });

    it(`keeps its errors under Exact's limit: at most ${TOKEN_ERRORS_PER_HOUR} token errors an hour`, async () => {
      fx = await startFixture({ env: { REFRESH_WINDOW_SECONDS: "300" } });
      fx.clock.advance(301);
      for (let i = 0; i < 30; i += 1) {
        await fx
          .broker()
          .vend.vend(fx.conn.connectionId, 300)
          .catch(() => undefined);
        fx.clock.advance(6);
      }
      const requests = fx.chainStats().tokenRequests;
      expect(requests.too_early).toBe(TOKEN_ERRORS_PER_HOUR);
      expect(requests.error_limited).toBe(0);
      expect((await fx.record()).status).toBe(ChainStatus.Active);
    });
  });

  describe("refusals", () => {
    it("answers ConnectionNotFound for an unknown connection", async () => {
      fx = await startFixture();
      await expect(fx.broker().vend.vend("nope", 30)).rejects.toThrow(ConnectionNotFound);
    });

    it("answers ReauthRequired with the command to run for a connection never seeded", async () => {
      fx = await startFixture({ seed: false });
      await expect(fx.broker().vend.vend(fx.conn.connectionId, 30)).rejects.toThrow(
        /connection seed --id conn-\d+/,
      );
    });

    it("reports a lease held past the deadline as ChainBusy, never as a credential failure", async () => {
      fx = await startFixture();
      fx.clock.advance(600);
      const record = await fx.record();
      const held = await fx
        .store()
        .acquire({ record, owner: "someone-else", purpose: LeasePurpose.Refresh, leaseMs: 60_000 });
      expect(held).toBeDefined();

      const waiter = fx.broker({ vendOptions: { waitMs: 2_000 } });
      const error = await waiter.vend.vend(fx.conn.connectionId, 30).catch((e: unknown) => e);
      expect(waiter.vend.leaseWaits).toBe(1);

      expect(error).toBeInstanceOf(ChainBusy);
      expect((error as ChainBusy).retryAfterSeconds).toBeGreaterThan(0);
      expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
    });
  });
});
