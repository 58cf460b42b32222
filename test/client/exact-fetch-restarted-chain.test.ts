import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { TokenClient } from "../../lib/client/index.js";
import { functionError, ok, sentEvent, T0, tokenFor, vendAnswer } from "./support.js";

// A connection removed and added again (or a chain table restored from a backup) starts again at a
// lower generation. A consumer still holding a token of the old chain gets Exact's 401 and reports
// that generation; token-vend refuses the report (ValidationError: above its current generation).
// The client then vends once more without the report, and exactFetch makes its one retry.

describe("exactFetch after a 401 whose generation the broker no longer has", () => {
  it("vends again without the report and retries once with the new chain's token", async () => {
    const lambda = new LambdaClient({ region: "eu-west-1" });
    const lambdaMock = mockClient(lambda);
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(ok(vendAnswer(57, 600, T0, { expiresInSeconds: 600, clientId: "app-1" })))
      .resolvesOnce(
        functionError(
          "ValidationError",
          'connection "acme": rejectedGeneration 57 is above its current generation 1',
        ),
      )
      .resolves(ok(vendAnswer(1, 600, T0, { expiresInSeconds: 600, clientId: "app-1" })));
    const bearers: Array<string | null> = [];
    const client = new TokenClient({
      now: () => T0,
      lambda,
      functionName: "TokenVend",
      fetch: async (_input, init) => {
        bearers.push(new Headers(init?.headers).get("authorization"));
        return bearers.length === 1
          ? new Response("", { status: 401 })
          : Response.json({ d: { results: [] } });
      },
    });

    const response = await client.exactFetch("acme", "crm/Accounts");

    expect(response.status).toBe(200);
    expect(bearers).toEqual([`Bearer ${tokenFor(57)}`, `Bearer ${tokenFor(1)}`]);
    expect(lambdaMock.commandCalls(InvokeCommand).map((call) => sentEvent(call.args[0].input))).toEqual([
      { connectionId: "acme", minValiditySeconds: 30 },
      { connectionId: "acme", minValiditySeconds: 30, rejectedGeneration: 57 },
      { connectionId: "acme", minValiditySeconds: 30 },
    ]);
  });
});
