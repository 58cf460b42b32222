import { afterEach, describe, expect, it } from "vitest";
import { hashToken } from "../../../lib/chain/token-seal.js";
import { type Fixture, startFixture } from "../../support/fixture.js";
import { advanceToWindow, harness, recordOf, tokenScript } from "./bad-days.js";

/**
 * Issue 9: "Tokens are stored and sent byte-exact, whatever their length and characters." The
 * existing tests use the simulator's tokens (base64 with + / = and !). Here Exact answers a
 * success whose tokens hold what a careless decoder or column changes: percent-escapes that must
 * not be decoded (%2B, %21, %25), form and JSON metacharacters, a backslash, non-ASCII letters and
 * an astral-plane character, 1,600 characters long. (Marked simAT!/simRT! so the leak guard
 * watches them.)
 */
const TAIL = ` %2B%21%25 a&b=c+d/e "q" \\ é € 𝄞 `;
const ACCESS = `simAT!${"x".repeat(1_600)}${TAIL}end`;
const REFRESH = `simRT!${"y".repeat(900)}${TAIL}end`;

describe("a success whose tokens hold percent-escapes, metacharacters and non-ASCII characters", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("stores them byte-exact and the vend answers the access token unchanged", async () => {
    fx = await startFixture();
    const h = harness(fx);
    const id = fx.conn.connectionId;
    tokenScript(fx, {
      status: 200,
      json: { access_token: ACCESS, token_type: "bearer", expires_in: "600", refresh_token: REFRESH },
    });
    await advanceToWindow(fx);

    const answer = await h.broker().vend.vend(id, 30);

    expect(answer.accessToken === ACCESS).toBe(true);
    expect(answer.generation).toBe(2);
    const record = await recordOf(fx, id);
    expect(record.refreshHash).toBe(hashToken(REFRESH));
    // Another container (no warm cache) reads the stored access token back unchanged.
    const again = await h.broker().vend.vend(id, 0);
    expect(again.accessToken === ACCESS).toBe(true);
  });
});
