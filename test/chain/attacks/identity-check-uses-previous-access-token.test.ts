import { afterEach, describe, expect, it } from "vitest";
import { ChainStatus } from "../../../lib/chain/chain-record.js";
import { ExactOAuthClient } from "../../../lib/exact/oauth-client.js";
import { type Fixture, startFixture } from "../../support/fixture.js";

const NO_HEAL = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

/**
 * Exact answers a code exchange with HTTP 200 and a refresh token but no `expires_in` (reported in
 * the wild, shared/exact-online.md). The classifier makes that `unavailable` with `rotated`;
 * sealTokens seals no access token; startedChain (lease-transitions.ts) writes only the refresh
 * attributes and does not remove the item's access attributes. The VERIFYING item then pairs the
 * NEW chain's refresh token with the PREVIOUS chain's access token, and PendingVerification
 * (#fromRecord) checks /current/Me with that previous token: the identity check verifies the old
 * user, not the chain.
 */
class NoExpiresInOnExchange extends ExactOAuthClient {
  override async exchangeCode(...args: Parameters<ExactOAuthClient["exchangeCode"]>) {
    const outcome = await super.exchangeCode(...args);
    if (outcome.kind !== "tokens") return outcome;
    const { refreshToken, accessToken } = outcome.rotated;
    return {
      kind: "unavailable" as const,
      sent: true,
      cause: "unrecognised" as const,
      status: 200,
      detail: "HTTP 200 without usable tokens",
      rotated: { refreshToken, accessToken },
    };
  }
}

describe("the identity check of a VERIFYING chain", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("never verifies a new chain with the access token of the chain it replaced", async () => {
    fx = await startFixture({ seed: false });
    const clientId = "app-shared";
    const x = "user-x@example.com";
    const u = "user-u@example.com";
    const a = await fx.stack.addConnection("conn-a", { username: x, clientId });
    const b = await fx.stack.addConnection("conn-b", { username: u, clientId });
    const get = async (id: string) => {
      const r = await fx.stack.store().get(id);
      if (!r) throw new Error("gone");
      return r;
    };
    await fx.stack.seed(a); // A holds Exact user X
    await fx.stack.seed(b); // B holds Exact user U
    expect((await get("conn-a")).exactUserName).toBe(x);

    // An operator re-seeds A, but the consent was given by user U; Exact's answer lacks expires_in.
    fx.clock.advance(100);
    const code = fx.stack.sim.authorize({ clientId, username: u, redirectUri: a.redirectUri });
    await expect(
      fx.broker({ oauth: new NoExpiresInOnExchange({ now: fx.clock.now }) }).onboarding.seed("conn-a", code),
    ).rejects.toThrow();
    const pending = await get("conn-a");
    expect(pending.status).toBe(ChainStatus.Verifying);
    expect(pending.refreshHash).toBe(fx.stack.sim.stats().chains[`${clientId}/${u}`]?.liveRefreshHash);

    // The pending check runs later (the scheduled refresh).
    fx.clock.advance(10);
    await fx.broker(NO_HEAL).refresh.run();
    const after = await get("conn-a");

    // U's chain must not end up on A labelled as user X (it belongs to B, which holds U's guard).
    const uChainOnA = after.refreshHash === fx.stack.sim.stats().chains[`${clientId}/${u}`]?.liveRefreshHash;
    expect
      .soft(
        { status: after.status, exactUserName: after.exactUserName, holdsUsersUChain: uChainOnA },
        "A was verified as user X while it holds user U's chain",
      )
      .not.toMatchObject({ status: ChainStatus.Active, exactUserName: x, holdsUsersUChain: true });

    // Consequence: after A's next refresh, A's consumers (who expect user X) get user U's tokens.
    fx.clock.advance(600);
    const answer = await fx.broker(NO_HEAL).vend.vend("conn-a", 30);
    const me = await new ExactOAuthClient({ now: fx.clock.now }).me(
      fx.stack.sim.url,
      answer.accessToken,
      5_000,
    );
    expect
      .soft(
        me.kind === "user" ? me.me.userName : me.kind,
        "connection A (user X) vends user U's access token",
      )
      .toBe(x);
  });
});
