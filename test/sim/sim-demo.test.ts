import { describe, expect, it } from "vitest";
import { ISSUED_SECRET_PATTERN } from "../../lib/sim/tokens.js";
import { runSimDemo } from "../../scripts/sim-demo.js";

describe("scripts/sim-demo.ts", () => {
  it("walks through the session step by step without printing a token", async () => {
    const lines: string[] = [];

    await runSimDemo((line) => lines.push(line));

    const output = lines.join("\n");
    expect(output).toMatch(/Code exchange: HTTP 200/);
    expect(output).toMatch(
      /Refresh right away: HTTP 400 access_denied "Rate limit exceeded: access_token not expired"/,
    );
    expect(output).toMatch(/Refresh in the window: HTTP 200/);
    expect(output).toMatch(
      /old refresh token again: HTTP 401 unauthorized_client "Old refresh token used\."/,
    );
    expect(output).toMatch(/generation 2, chains started 1/);
    expect(output).toMatch(/simRT!… \(\d{3} chars\)/);
    expect(output).not.toMatch(ISSUED_SECRET_PATTERN);
    expect(lines.at(-1)).toBe("Simulator stopped.");
  });
});
