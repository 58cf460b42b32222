import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { TOKEN_ERRORS_PER_HOUR } from "../../../lib/chain/error-budget.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import {
  advanceToWindow,
  countedErrors,
  harness,
  recordOf,
  successfulLogins,
  tokenAnswers,
  tokenScript,
  vendOutcome,
} from "./bad-days.js";

async function advanceToBackoffEnd(fx: Fixture): Promise<void> {
  const until = (await recordOf(fx, fx.conn.connectionId)).backoffUntilMs ?? 0;
  if (until > fx.clock.now()) fx.clock.advance((until - fx.clock.now()) / 1000);
}

/**
 * Issue 9: "no chain spends more than 8 token errors in any hour" (design invariant 7: Exact
 * blocks at 10 per app, user and endpoint). The chain's budget (`tokenErrors`) covers refreshes
 * only: a heal's code exchange goes to the same token endpoint for the same app and user, yet
 * login-protocol.ts neither checks the budget before it nor counts a refused exchange in it (the
 * refusal is a failed login, 3 an hour). A chain that spent its 8 on refreshes and then died
 * gets 3 more refused exchanges in the same hour: 11 token-endpoint 4xx answers, Exact's limit
 * passed.
 */
describe("a chain that spent its token-error budget, then dies, then its heals' code exchanges are refused", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("sends no more than 8 token-endpoint 4xx answers' worth of calls in the hour", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    const startMs = fx.clock.now();
    await advanceToWindow(fx);
    // Seven unrecognised JSON 400s (counted: Exact counts every 4xx), then "old refresh token".
    for (let answer = 0; answer < TOKEN_ERRORS_PER_HOUR - 1; answer++) {
      tokenScript(fx, {
        status: 400,
        json: { error: "temporarily_unavailable", error_description: "Try later." },
      });
      await vendOutcome(h.broker(), id, 30);
      await advanceToBackoffEnd(fx);
    }
    tokenScript(fx, {
      status: 401,
      json: { error: "unauthorized_client", error_description: "Old refresh token used." },
    });
    await vendOutcome(h.broker(), id, 30);
    const broken = await recordOf(fx, id);
    expect(broken.status).toBe(ChainStatus.Broken);
    expect(countedErrors(broken)).toBe(TOKEN_ERRORS_PER_HOUR);

    // Three heals (the login budget), each code exchange refused with a 400.
    tokenScript(fx, {
      count: 3,
      status: 400,
      json: { error: "invalid_grant", error_description: "The authorization code expired." },
    });
    for (let heal = 0; heal < 3; heal++) {
      await advanceToBackoffEnd(fx);
      await h
        .broker()
        .heal.heal(id)
        .catch(() => undefined);
    }

    const answers = tokenAnswers(fx);
    expect(fx.clock.now() - startMs).toBeLessThan(3_600_000);
    // Every scripted answer here is a 4xx Exact counts; error_limited is Exact's own block.
    expect({ fourXx: answers.scripted ?? 0, blockedByExact: answers.error_limited ?? 0 }).toEqual({
      fourXx: expect.toSatisfy((n: number) => n <= TOKEN_ERRORS_PER_HOUR),
      blockedByExact: 0,
    });
    expect(successfulLogins(fx)).toBe(0);

    // An operator's heal is not stopped by the login budget, but Exact's error limit binds it too:
    // no login, the chain BROKEN and backing off until the budget frees, Throttled.
    const operatorHeal = await h.broker().heal.heal(id, { operator: true });
    expect(operatorHeal).toMatchObject({ kind: "failed", errorType: "Throttled" });
    expect(successfulLogins(fx)).toBe(0);
    const held = await recordOf(fx, id);
    expect(held.status).toBe(ChainStatus.Broken);
    expect(held.backoffUntilMs).toBeGreaterThan(fx.clock.now() + 30 * 60_000);
    expect(tokenAnswers(fx).scripted).toBe(answers.scripted);
  });
});

describe("a heal whose code exchange Exact refuses with a 4xx", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("counts the refusal in the chain's token-error budget, as a refresh's", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    await advanceToWindow(fx);
    tokenScript(fx, {
      status: 401,
      json: { error: "unauthorized_client", error_description: "Old refresh token used." },
    });
    await vendOutcome(h.broker(), id, 30);
    expect(countedErrors(await recordOf(fx, id))).toBe(1);

    tokenScript(fx, {
      status: 400,
      json: { error: "invalid_grant", error_description: "The authorization code expired." },
    });
    const heal = await h.broker().heal.heal(id);

    expect(heal).toMatchObject({ kind: "failed" });
    const after = await recordOf(fx, id);
    expect(after.status).toBe(ChainStatus.Broken);
    expect(countedErrors(after)).toBe(2);
    // The login itself succeeded; its exchange failed, so it counts as a failed login too.
    expect(successfulLogins(fx)).toBe(1);
    expect(after.loginFailures?.errorAtMs.length).toBe(1);
  });
});
