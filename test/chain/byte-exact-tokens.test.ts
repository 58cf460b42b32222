import { createHash } from "node:crypto";
import type { Context } from "aws-lambda";
import { afterEach, describe, expect, it } from "vitest";
import { type ChainRecord, ChainStatus } from "../../lib/chain/chain-record.js";
import type { HttpRequest } from "../../lib/exact/http.js";
import { ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import { createTokenVendHandler } from "../../lib/handlers/token-vend-handler.js";
import { createLogger } from "../../lib/log/logger.js";
import { newAccessToken, newRefreshToken } from "../../lib/sim/tokens.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { forceStatus } from "../support/force-status.js";

/** Seconds from a token's arrival until its refresh window is open (570 s, plus the broker's margin). */
const WINDOW = 572;

/** What the simulator says of an access token: accepted by /current/Me only if it is exactly one it issued. */
async function meStatus(fx: Fixture, accessToken: string): Promise<number> {
  const response = await fetch(`${fx.stack.sim.url}/api/v1/current/Me`, {
    headers: { Authorization: `Bearer ${accessToken}`, Accept: "application/json" },
  });
  return response.status;
}

/** The stored tokens, decrypted as the broker does: the encrypted item's round trip. */
async function storedTokens(fx: Fixture, record: ChainRecord): Promise<{ access: string; refresh?: string }> {
  const { cipher } = fx.broker().deps;
  const binding = { connectionId: record.connectionId, incarnation: record.incarnation ?? "" };
  return {
    access: await cipher.decrypt(record.accessCt ?? "", { ...binding, kind: "access" }),
    ...(record.refreshCt
      ? { refresh: await cipher.decrypt(record.refreshCt, { ...binding, kind: "refresh" }) }
      : {}),
  };
}

/** The simulator's `liveRefreshHash` of a refresh token: the first 16 hex digits of its SHA-256. */
function liveHash(token: string): string {
  return createHash("sha256").update(token).digest("hex").slice(0, 16);
}

/** The token the vend answered is the one the simulator issued, byte for byte, and so is the stored chain. */
async function expectExact(fx: Fixture, accessToken: string): Promise<void> {
  expect(accessToken.length).toBeGreaterThanOrEqual(1400);
  for (const char of ["+", "/", "=", "!"]) expect(accessToken).toContain(char);
  expect(await meStatus(fx, accessToken)).toBe(200);
  const record = await fx.record();
  const stored = await storedTokens(fx, record);
  expect(stored.access).toBe(accessToken);
  if (stored.refresh !== undefined) {
    expect(stored.refresh.length).toBeGreaterThanOrEqual(850);
    expect(liveHash(stored.refresh)).toBe(fx.chainStats().liveRefreshHash);
    expect(record.refreshHash).toBe(fx.chainStats().liveRefreshHash);
  }
}

describe("tokens are stored and sent byte-exact, whatever their length and characters", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  describe("the OAuth client's requests", () => {
    const captured: HttpRequest[] = [];
    const oauth = new ExactOAuthClient({
      send: async (request) => {
        captured.push(request);
        return { kind: "response", status: 503, headers: new Headers(), body: "" };
      },
    });
    const creds = { clientId: "app", clientSecret: "secret" };

    it("form-encodes + / = and ! in a refresh token, so Exact's form decoding gives it back exactly", async () => {
      const refreshToken = newRefreshToken("long");
      captured.length = 0;

      await oauth.refresh("https://start.exactonline.nl", creds, refreshToken, 1_000);

      const body = captured[0]?.body ?? "";
      const sent = /(?:^|&)refresh_token=([^&]*)/.exec(body)?.[1] ?? "";
      // A raw `+` would arrive as a space; `%2B` arrives as `+`.
      expect(sent).not.toMatch(/[+/=!]/);
      for (const encoded of ["%2B", "%2F", "%3D", "%21"]) expect(sent).toContain(encoded);
      expect(new URLSearchParams(body).get("refresh_token")).toBe(refreshToken);
      expect(captured[0]?.headers?.["content-type"]).toBe("application/x-www-form-urlencoded");
    });

    it("sends an access token unchanged in the Authorization header", async () => {
      const accessToken = newAccessToken("long");
      captured.length = 0;

      await oauth.me("https://start.exactonline.nl", accessToken, 1_000);
      await oauth.divisionReachable("https://start.exactonline.nl", accessToken, 123456, 1_000);

      expect(captured.map((request) => request.headers?.authorization)).toEqual([
        `Bearer ${accessToken}`,
        `Bearer ${accessToken}`,
      ]);
    });
  });

  it("a chain seeded, vended, refreshed several times and healed with long tokens", async () => {
    fx = await startFixture({ sim: { tokenStyle: "long" } });

    // Seeded (code exchange) and vended.
    const first = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    await expectExact(fx, first.accessToken);

    // Refreshed by vends and by the scheduled refresh; each refresh token redeemed as issued.
    let last = first.accessToken;
    for (let round = 0; round < 4; round += 1) {
      fx.clock.advance(WINDOW);
      const answer = await fx.broker().vend.vend(fx.conn.connectionId, 30);
      expect(answer.generation).toBe(round + 2);
      expect(answer.accessToken).not.toBe(last);
      await expectExact(fx, answer.accessToken);
      last = answer.accessToken;
    }
    fx.clock.advance(WINDOW);
    const run = await fx.broker().refresh.run();
    expect(run.outcomes.refreshed ?? 0).toBe(1);
    const afterRun = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    expect(afterRun.generation).toBe(6);
    await expectExact(fx, afterRun.accessToken);

    // Healed: a login, a new chain from the code exchange.
    await forceStatus(fx.stack, fx.conn.connectionId, {
      status: ChainStatus.Broken,
      statusReason: "old_token",
    });
    expect(await fx.broker().heal.heal(fx.conn.connectionId)).toEqual({ kind: "healed", generation: 7 });
    const healed = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    expect(healed.generation).toBe(7);
    await expectExact(fx, healed.accessToken);
    fx.clock.advance(WINDOW);
    const next = await fx.broker().vend.vend(fx.conn.connectionId, 30);
    expect(next.generation).toBe(8);
    await expectExact(fx, next.accessToken);

    const requests = fx.chainStats().tokenRequests;
    expect(requests).toMatchObject({ code_exchanged: 2, refreshed: 6, invalid_grant: 0, old_token: 0 });
    expect(fx.stack.sim.stats().totals.meRequests.unauthorized).toBe(0);
  });

  it("token-vend's answer carries the long access token unchanged through the Lambda's JSON", async () => {
    fx = await startFixture({ sim: { tokenStyle: "long" } });
    const logger = createLogger({ serviceName: "token-vend" });
    const handler = createTokenVendHandler(fx.broker({ log: logger }), logger);
    const context = {
      awsRequestId: "req-1",
      functionName: "token-vend",
      getRemainingTimeInMillis: () => 30_000,
    } as unknown as Context;

    const answer = await handler({ connectionId: fx.conn.connectionId }, context);
    const received = JSON.parse(JSON.stringify(answer)) as { accessToken: string };

    await expectExact(fx, received.accessToken);
  });

  it("an implicit login's long access token arrives through the redirect's fragment unchanged", async () => {
    fx = await startFixture({ mode: "implicit", sim: { tokenStyle: "long" } });

    const answer = await fx.broker().vend.vend(fx.conn.connectionId, 30);

    expect(answer.generation).toBe(1);
    await expectExact(fx, answer.accessToken);
  });
});
