import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { AccessCheckOutcome } from "../../lib/chain/access-check.js";
import type { VendAnswer } from "../../lib/chain/token-cache.js";
import { BrokerError, ExactUnavailable, Throttled, ValidationError } from "../../lib/errors.js";
import { countingDynamo, resetCounts } from "../../lib/local/counting-dynamo.js";
import { type Fixture, startFixture } from "../support/fixture.js";

/** Seconds after seeding at which Exact's refresh window is open: the token has 28 s left. */
const WINDOW = 572;
/** The simulator revokes every access token this long after issuing it (variant). */
const REVOKED_AFTER_S = 60;
/** Each broker is a container of its own: its own warm cache, no in-process sharing. */
const CONTAINER = { vendOptions: { coalesce: false } };

/** Compares tokens without ever printing one in a failure message. */
const digest = (answer: VendAnswer): string => createHash("sha256").update(answer.accessToken).digest("hex");

/** What Exact's REST API says to the consumer's call with the vended token. */
async function apiStatus(answer: VendAnswer): Promise<number> {
  const response = await fetch(`${answer.baseUrl}/api/v1/${answer.division}/crm/Accounts?$top=1`, {
    headers: { authorization: `Bearer ${answer.accessToken}`, accept: "application/json" },
  });
  await response.arrayBuffer();
  return response.status;
}

async function failure(promise: Promise<unknown>): Promise<BrokerError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BrokerError);
  return error as BrokerError;
}

describe("VendDoor with rejectedGeneration (a consumer's 401)", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("serves a newer generation at once, past the reporter's own warm cache, without asking /current/Me", async () => {
    fx = await startFixture();
    fx.stack.sim.setVariants({ oldAccessTokenValidAfterRefresh: false });
    fx.clock.advance(WINDOW);
    const consumer = fx.broker(CONTAINER);
    const held = await consumer.vend.vend(fx.conn.connectionId, 20);
    const refreshed = await fx.broker(CONTAINER).vend.vend(fx.conn.connectionId, 30);
    expect(refreshed.generation).toBe(2);
    expect(await apiStatus(held)).toBe(401);

    const answer = await consumer.vend.vend(fx.conn.connectionId, 20, { rejectedGeneration: 1 });

    expect(answer.generation).toBe(2);
    expect(digest(answer)).toBe(digest(refreshed));
    expect(await apiStatus(answer)).toBe(200);
    expect(fx.chainStats().meRequests).toMatchObject({ ok: 1, unauthorized: 0 });
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, too_early: 0 });
  });

  it("checks the same generation once with /current/Me and, when Exact accepts it, serves the same token", async () => {
    fx = await startFixture();
    const consumer = fx.broker(CONTAINER);
    const held = await consumer.vend.vend(fx.conn.connectionId, 30);
    const { client, counts } = countingDynamo(fx.stack.dynamo.endpoint);
    const reporter = fx.broker({ ...CONTAINER, dynamo: client });
    resetCounts(counts);

    const answer = await reporter.vend.vend(fx.conn.connectionId, 30, { rejectedGeneration: 1 });

    // Reads: the item, the app's state (the API gate). Writes: the lease, and its end with the outcome.
    expect(counts).toEqual({ GetItem: 2, UpdateItem: 2 });
    resetCounts(counts);
    const again = await consumer.vend.vend(fx.conn.connectionId, 30, { rejectedGeneration: 1 });
    const later = await reporter.vend.vend(fx.conn.connectionId, 30, { rejectedGeneration: 1 });

    expect(counts).toEqual({ GetItem: 1 });
    for (const served of [answer, again, later]) {
      expect(served.generation).toBe(1);
      expect(digest(served)).toBe(digest(held));
    }
    expect(fx.chainStats().meRequests).toMatchObject({ ok: 2, unauthorized: 0 });
    expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
    expect((await fx.record()).accessCheck).toMatchObject({
      generation: 1,
      outcome: AccessCheckOutcome.Accepted,
    });
  });

  it("counts a check that never reached Exact as none: ExactUnavailable for a few seconds, then the next report checks", async () => {
    fx = await startFixture();
    const consumer = fx.broker(CONTAINER);
    const held = await consumer.vend.vend(fx.conn.connectionId, 30);
    // Exact's port refuses connections (in real time): the Me request is never sent.
    fx.stack.sim.addFault({ kind: "refuse", durationMs: 1_000 });

    const unreached = await failure(consumer.vend.vend(fx.conn.connectionId, 30, { rejectedGeneration: 1 }));

    expect(unreached).toBeInstanceOf(ExactUnavailable);
    expect(unreached.retryAfterSeconds).toBe(5);
    expect((await fx.record()).accessCheck).toBeUndefined();
    expect(fx.chainStats().meRequests).toMatchObject({ ok: 1, unauthorized: 0 });
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const answer = await consumer.vend.vend(fx.conn.connectionId, 30, { rejectedGeneration: 1 });

    expect(digest(answer)).toBe(digest(held));
    expect((await fx.record()).accessCheck).toMatchObject({
      generation: 1,
      outcome: AccessCheckOutcome.Accepted,
    });
    expect(fx.chainStats().meRequests).toMatchObject({ ok: 2, unauthorized: 0 });
    expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
  });

  it("refreshes once when /current/Me refuses the current token, and serves the new one", async () => {
    fx = await startFixture();
    fx.stack.sim.setVariants({ accessTokenRevokedAfterSeconds: REVOKED_AFTER_S });
    fx.clock.advance(WINDOW);
    const consumer = fx.broker(CONTAINER);
    // 28 s left: enough for this ask, so nothing but the report makes the broker refresh.
    const held = await consumer.vend.vend(fx.conn.connectionId, 20);
    expect(await apiStatus(held)).toBe(401);

    const answer = await consumer.vend.vend(fx.conn.connectionId, 20, { rejectedGeneration: 1 });

    expect(answer.generation).toBe(2);
    expect(await apiStatus(answer)).toBe(200);
    expect(fx.chainStats().meRequests).toMatchObject({ ok: 1, unauthorized: 1 });
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, too_early: 0 });
    const late = await fx.broker(CONTAINER).vend.vend(fx.conn.connectionId, 20, { rejectedGeneration: 1 });
    expect(digest(late)).toBe(digest(answer));
    expect(fx.chainStats().tokenRequests.refreshed).toBe(1);
  });

  it("answers a retryable Throttled with retryAfterSeconds while Exact's window is shut, and serves the refused token to nobody", async () => {
    fx = await startFixture();
    fx.stack.sim.setVariants({ accessTokenRevokedAfterSeconds: REVOKED_AFTER_S });
    fx.clock.advance(100);
    const consumer = fx.broker(CONTAINER);
    const held = await consumer.vend.vend(fx.conn.connectionId, 30);
    expect(await apiStatus(held)).toBe(401);

    const reported = await failure(consumer.vend.vend(fx.conn.connectionId, 30, { rejectedGeneration: 1 }));
    const unreported = await failure(consumer.vend.vend(fx.conn.connectionId, 30));
    const other = await failure(
      fx.broker(CONTAINER).vend.vend(fx.conn.connectionId, 30, { rejectedGeneration: 1 }),
    );

    // The window opens 571 s after seeding: 471 s from now.
    expect(reported).toBeInstanceOf(Throttled);
    expect(reported.retryAfterSeconds).toBeGreaterThanOrEqual(465);
    expect(reported.retryAfterSeconds).toBeLessThanOrEqual(472);
    expect(unreported).toBeInstanceOf(Throttled);
    expect(other).toBeInstanceOf(Throttled);
    expect(fx.chainStats().meRequests).toMatchObject({ ok: 1, unauthorized: 1 });
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 0, too_early: 0 });

    fx.clock.advance(reported.retryAfterSeconds ?? 0);
    const answer = await fx.broker(CONTAINER).vend.vend(fx.conn.connectionId, 30, { rejectedGeneration: 1 });

    expect(answer.generation).toBe(2);
    expect(await apiStatus(answer)).toBe(200);
    expect(fx.chainStats().meRequests.unauthorized).toBe(1);
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, too_early: 0 });
  });

  it("answers ValidationError for a generation above the current one, without calling Exact", async () => {
    fx = await startFixture();

    const error = await failure(fx.broker().vend.vend(fx.conn.connectionId, 30, { rejectedGeneration: 2 }));

    expect(error).toBeInstanceOf(ValidationError);
    expect(error.name).toBe("ValidationError");
    expect(error.retryable).toBe(false);
    expect(fx.chainStats().meRequests.ok).toBe(1);
  });
});

describe("8 consumers in separate containers reporting one generation at once", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());
  // Polls shorter than a second pass in real time: 8 pollers jumping one shared clock would age the token.
  const REAL_POLLS = { realShortSleeps: true };

  it("cost one /current/Me call and no refresh when Exact accepts the token", async () => {
    fx = await startFixture(REAL_POLLS);
    const held = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    const brokers = Array.from({ length: 8 }, () => fx.broker(CONTAINER));

    const answers = await Promise.all(
      brokers.map((broker) => broker.vend.vend(fx.conn.connectionId, 30, { rejectedGeneration: 1 })),
    );

    expect(new Set(answers.map(digest))).toEqual(new Set([digest(held)]));
    expect(fx.chainStats().meRequests).toMatchObject({ ok: 2, unauthorized: 0 });
    expect(fx.chainStats().tokenRequests.refreshed).toBe(0);
  });

  it("cost one /current/Me call and one refresh when Exact refuses it inside the window", async () => {
    fx = await startFixture(REAL_POLLS);
    fx.stack.sim.setVariants({ accessTokenRevokedAfterSeconds: REVOKED_AFTER_S });
    fx.clock.advance(WINDOW);
    const brokers = Array.from({ length: 8 }, () => fx.broker(CONTAINER));

    const answers = await Promise.all(
      brokers.map((broker) => broker.vend.vend(fx.conn.connectionId, 20, { rejectedGeneration: 1 })),
    );

    expect(new Set(answers.map((answer) => answer.generation))).toEqual(new Set([2]));
    expect(new Set(answers.map(digest)).size).toBe(1);
    expect(fx.chainStats().meRequests).toMatchObject({ ok: 1, unauthorized: 1 });
    expect(fx.chainStats().tokenRequests).toMatchObject({ refreshed: 1, too_early: 0, old_token: 0 });
  });
});
