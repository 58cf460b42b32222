import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { refusesUser, USER_BLOCK_REASONS } from "../../lib/client/exact-errors.js";
import { ExactForbidden, UserBlocked } from "../../lib/client/index.js";
import type { BrokerEvent } from "../../lib/events/broker-events.js";
import { MemoryPublisher } from "../../lib/events/event-publishers.js";
import { USER_BLOCK_REASONS as BROKER_USER_BLOCK_REASONS } from "../../lib/exact/classify-token-response.js";
import { type ExactStack, startExactStack } from "./exact-stack.js";

// Issue 9: "Blocked user or licence. This is seen as 403 with a Reason header on the broker's own
// /current/Me calls now, and on consumers' calls once the consumer issue reports them." A
// consumer's exactFetch reports such a 403 through the conditional check of issue 11: the next
// vend names the refused generation, token-vend checks it with /current/Me, and Me's 403 makes
// the chain BLOCKED (lib/chain/rejected-token-check.ts, user-blocks.ts).

const FORBIDDEN = { error: { code: "", message: { lang: "", value: "Forbidden" } } };

let stack: ExactStack;
let events: MemoryPublisher;
let healsAsked: string[];

afterEach(async () => {
  await stack?.close();
});

async function start(): Promise<void> {
  events = new MemoryPublisher();
  healsAsked = [];
  stack = await startExactStack(60, {
    events,
    healTrigger: { trigger: (id: string) => void healsAsked.push(id), handedOff: async () => undefined },
  });
}

/** Exact refuses the fixture's user with `reason` on `endpoint`, for every call. */
function refuse(endpoint: "api" | "me", reason: string): void {
  stack.fixture.stack.sim.addScript({
    endpoint,
    clientId: stack.fixture.conn.clientId,
    count: 1_000,
    status: 403,
    headers: { Reason: reason },
    json: FORBIDDEN,
  });
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => "resolved",
    (error: unknown) => error,
  );
}

const brokerEvents = () =>
  events.events.map((event: BrokerEvent) => [event.type, event.detail.connectionId, event.detail.reason]);
const successfulLogins = () =>
  stack.fixture.stack.sim.stats().logins[stack.fixture.conn.username]?.success ?? 0;

describe("a consumer's 403 whose Reason refuses the user", () => {
  it("BlockedUser on a REST call: ExactForbidden, no retry; the next vend reports the generation, and the broker makes the chain BLOCKED with one UserBlocked event and no login", async () => {
    await start();
    const id = stack.fixture.conn.connectionId;
    const consumer = stack.consumer();
    const held = await consumer.getAccessToken(id);
    // A blocked user is refused everywhere: the REST API and /current/Me.
    refuse("api", "BlockedUser");
    refuse("me", "BlockedUser");
    const vendsBefore = stack.events.length;

    const error = await failure(consumer.exactFetch(id, "crm/Accounts?$top=1"));

    expect(error).toBeInstanceOf(ExactForbidden);
    expect(error).toMatchObject({ name: "ExactForbidden", status: 403, reason: "BlockedUser" });
    // No retry: one REST call, no vend.
    expect(stack.apiCounts(held.division as number).scripted).toBe(1);
    expect(stack.events.length).toBe(vendsBefore);

    const next = await failure(consumer.getAccessToken(id));

    expect(next).toBeInstanceOf(UserBlocked);
    expect(next).toMatchObject({ name: "UserBlocked", retryable: true });
    expect(stack.events.slice(vendsBefore)).toEqual([
      { connectionId: id, minValiditySeconds: 30, rejectedGeneration: held.generation },
    ]);
    expect(await stack.fixture.record()).toMatchObject({
      status: ChainStatus.Blocked,
      statusReason: "blocked_user",
    });
    expect(brokerEvents()).toEqual([["UserBlocked", id, "blocked_user"]]);
    expect(stack.fixture.chainStats().meRequests.scripted).toBe(1);
    // Every consumer of the connection is answered UserBlocked now, without another check.
    expect(await failure(stack.consumer().getAccessToken(id))).toBeInstanceOf(UserBlocked);
    expect(stack.fixture.chainStats().meRequests.scripted).toBe(1);
    expect(successfulLogins()).toBe(0);
    expect(healsAsked).toEqual([]);
    expect(brokerEvents()).toHaveLength(1);
  });

  it("NoDivisionAccess for a division the user cannot reach: reported, /current/Me accepts the user, the same token is served again and nothing is blocked", async () => {
    await start();
    const id = stack.fixture.conn.connectionId;
    const consumer = stack.consumer();
    const held = await consumer.getAccessToken(id);
    const vendsBefore = stack.events.length;
    const meBefore = stack.fixture.chainStats().meRequests.ok;

    // The simulator refuses a division the user has no access to with Reason NoDivisionAccess.
    const error = await failure(consumer.exactFetch(id, "/api/v1/999/crm/Accounts"));
    const next = await consumer.getAccessToken(id);

    expect(error).toMatchObject({ name: "ExactForbidden", status: 403, reason: "NoDivisionAccess" });
    expect(stack.events.slice(vendsBefore)).toEqual([
      { connectionId: id, minValiditySeconds: 30, rejectedGeneration: held.generation },
    ]);
    expect(next.generation).toBe(held.generation);
    // One check of the generation, which accepted it.
    expect(stack.fixture.chainStats().meRequests.ok - meBefore).toBe(1);
    expect((await stack.fixture.record()).status).toBe(ChainStatus.Active);
    expect(brokerEvents()).toEqual([]);
  });

  it("a 403 whose Reason refuses no user reports nothing: the cached token serves the next call", async () => {
    await start();
    const id = stack.fixture.conn.connectionId;
    const consumer = stack.consumer();
    await consumer.getAccessToken(id);
    stack.fixture.stack.sim.addScript({
      endpoint: "api",
      clientId: stack.fixture.conn.clientId,
      status: 403,
      json: FORBIDDEN,
    });
    const vendsBefore = stack.events.length;

    const error = await failure(consumer.exactFetch(id, "crm/Accounts?$top=1"));
    await consumer.getAccessToken(id);

    expect(error).toMatchObject({ name: "ExactForbidden", status: 403, reason: undefined });
    expect(stack.events.length).toBe(vendsBefore);
  });
});

describe("refusesUser", () => {
  it("knows the broker's user-block reasons, bare or with Exact's prose after a colon", () => {
    expect(USER_BLOCK_REASONS).toEqual(BROKER_USER_BLOCK_REASONS);
    expect(USER_BLOCK_REASONS.map((reason) => refusesUser(`${reason}: as Exact words it`))).toEqual(
      USER_BLOCK_REASONS.map(() => true),
    );
    expect(
      [undefined, null, "", "Forbidden", "blockeduser", "TooEarlyToRefreshTokens"].map(refusesUser),
    ).toEqual([false, false, false, false, false, false]);
  });
});
