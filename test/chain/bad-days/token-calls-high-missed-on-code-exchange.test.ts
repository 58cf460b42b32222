import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { connectionKey } from "../../../lib/chain/table-definition.js";
import { TOKEN_CALLS_WARN_AT, utcDay } from "../../../lib/chain/token-call-cap.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import { advanceToWindow, eventsOf, harness, recordOf, seed, tokenScript, vendOutcome } from "./bad-days.js";

const DAY_MS = 86_400_000;

/** Stands in for the day's earlier token calls: the chain's own counter (token-call-cap.ts TokenCalls). */
async function setCallsToday(fx: Fixture, count: number): Promise<void> {
  await fx.stack.dynamo.client.send(
    new UpdateItemCommand({
      TableName: fx.stack.tableName,
      Key: marshall({ pk: connectionKey(fx.conn.connectionId) }),
      UpdateExpression: "SET tokenCalls = :calls",
      ExpressionAttributeValues: marshall({ ":calls": { day: utcDay(fx.clock.now()), count } }),
    }),
  );
}

/**
 * Issue 9: the broker "warns with an event at 180". The call that reaches 180 may be any token
 * call: CallLedger.count notes the crossing, and every door that counts one (token-protocol.ts,
 * onboarding.ts, heal-door.ts) calls warnIfHigh after its writes. Were only refreshes checked, a
 * 180th call that is a code exchange would let the day go on to the cap with no TokenCallsHigh:
 * no later refresh crosses 180 again.
 */
describe("the day's 180th token call is a heal's code exchange", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("TokenCallsHigh is still sent (once) that day", async () => {
    fx = await startFixture({ sim: { accessTtlSeconds: 60 } });
    const h = harness(fx);
    const id = fx.conn.connectionId;
    // Early in a UTC day, so the whole test stays inside it.
    fx.clock.advance(((utcDay(fx.clock.now()) + 1) * DAY_MS + 60_000 - fx.clock.now()) / 1000);
    tokenScript(fx, {
      status: 401,
      json: { error: "unauthorized_client", error_description: "Old refresh token used." },
    });
    await vendOutcome(h.broker(), id, 30);
    expect((await recordOf(fx, id)).status).toBe(ChainStatus.Broken);
    await setCallsToday(fx, TOKEN_CALLS_WARN_AT - 1);

    await h.broker().heal.heal(id);
    expect((await recordOf(fx, id)).tokenCalls?.count).toBe(TOKEN_CALLS_WARN_AT);
    for (let refresh = 0; refresh < 3; refresh++) {
      await advanceToWindow(fx);
      expect(await vendOutcome(h.broker(), id, 30)).toMatchObject({ served: expect.any(Number) });
    }

    expect((await recordOf(fx, id)).tokenCalls?.count).toBe(TOKEN_CALLS_WARN_AT + 3);
    expect(eventsOf(h.events, "TokenCallsHigh")).toEqual([["TokenCallsHigh", id, "daily_cap"]]);
  });
});

describe("the day's 180th token call is a seed's code exchange", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("TokenCallsHigh is sent once, after the exchange's chain is stored", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    fx.clock.advance(((utcDay(fx.clock.now()) + 1) * DAY_MS + 60_000 - fx.clock.now()) / 1000);
    await setCallsToday(fx, TOKEN_CALLS_WARN_AT - 1);

    await seed(fx, fx.conn, h.broker());
    await advanceToWindow(fx);
    await vendOutcome(h.broker(), id, 30);

    expect(await recordOf(fx, id)).toMatchObject({
      status: ChainStatus.Active,
      tokenCalls: { count: TOKEN_CALLS_WARN_AT + 1 },
    });
    expect(eventsOf(h.events, "TokenCallsHigh")).toEqual([["TokenCallsHigh", id, "daily_cap"]]);
  });
});
