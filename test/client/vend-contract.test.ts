import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ExactStack, startExactStack } from "./exact-stack.js";

// The client's side of issue 11's vend contract against the real token-vend handler and the
// simulator: expiry counted on the consumer's own clock, and the refused generation reported
// after a 401 (token-vend bypasses even its warm cache).

let stack: ExactStack;

beforeAll(async () => {
  stack = await startExactStack(60);
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

describe("a consumer whose clock is off", () => {
  it.each([
    ["60 s behind", -60_000],
    ["60 s ahead", 60_000],
  ])("never serves an expired token from its cache (%s)", async (_name, skewMs) => {
    const { fixture } = stack;
    const id = fixture.conn.connectionId;
    const consumer = stack.consumer({}, skewMs);
    const first = await consumer.getAccessToken(id);
    expect(first.expiresInSeconds, "token-vend's answer carries expiresInSeconds (issue 11)").toEqual(
      expect.any(Number),
    );
    const unauthorizedBefore = stack.apiCounts(first.division as number).unauthorized ?? 0;

    // Past the token's end: by expiresAt on a clock 60 s behind it would still have a minute.
    fixture.clock.advance((first.expiresInSeconds ?? 0) + 1);
    const response = await consumer.exactFetch(id, "crm/Accounts?$top=1");
    const second = await consumer.getAccessToken(id);

    expect(response.status).toBe(200);
    expect(second.generation).toBeGreaterThan(first.generation);
    // The call went out with the new token at once: Exact never saw the expired one.
    expect(stack.apiCounts(first.division as number).unauthorized ?? 0).toBe(unauthorizedBefore);
  });

  it("keeps the token for its whole life on a clock that is ahead (no vend a minute early)", async () => {
    const { fixture } = stack;
    const id = fixture.conn.connectionId;
    const consumer = stack.consumer({}, 60_000);
    const first = await consumer.getAccessToken(id);
    const invocations = stack.tokenVend.invocations();

    // 40 s left by the token's own count; by expiresAt this clock would see none.
    fixture.clock.advance((first.expiresInSeconds ?? 0) - 40);
    const again = await consumer.getAccessToken(id);

    expect(again).toBe(first);
    expect(stack.tokenVend.invocations()).toBe(invocations);
  });
});

describe("a 401 for a token Exact revoked", () => {
  it("reports the generation, and token-vend serves the new chain's token past its warm cache", async () => {
    const { fixture } = stack;
    const { sim } = fixture.stack;
    const id = fixture.conn.connectionId;
    const consumer = stack.consumer();
    sim.setVariants({ oldAccessTokenValidAfterRefresh: false });
    try {
      // token-vend's warm container and the consumer both hold this generation.
      const held = await consumer.getAccessToken(id);
      // An operator re-consents: Exact starts a new chain and (with this variant) revokes the
      // older access tokens at once.
      const code = sim.authorize({
        clientId: fixture.conn.clientId,
        username: fixture.conn.username,
        redirectUri: fixture.conn.redirectUri,
      });
      await fixture.broker().onboarding.seed(id, code);
      const unauthorizedBefore = stack.apiCounts(held.division as number).unauthorized ?? 0;
      const eventsBefore = stack.events.length;

      const response = await consumer.exactFetch(id, "crm/Accounts?$top=1");
      const served = await consumer.getAccessToken(id);

      expect(response.status).toBe(200);
      expect(stack.apiCounts(held.division as number).unauthorized ?? 0).toBe(unauthorizedBefore + 1);
      expect(stack.events.slice(eventsBefore)).toEqual([
        { connectionId: id, minValiditySeconds: 30, rejectedGeneration: held.generation },
      ]);
      expect(served.generation).toBeGreaterThan(held.generation);
    } finally {
      sim.setVariants({ oldAccessTokenValidAfterRefresh: true });
    }
  });
});
