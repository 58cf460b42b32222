import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { type ExactFetchDeps, exactFetch } from "../../lib/client/exact-fetch.js";
import { type AccessToken, Throttled } from "../../lib/client/index.js";
import { SharedRateBudget } from "../../lib/ratebudget/shared-rate-budget.js";

// With RATE_BUDGET_TABLE_NAME set, every exactFetch first claims a slot in DynamoDB. When that
// request fails (a throttled table, a role without the grant, no network), nothing goes to Exact
// and the consumer gets a retryable BrokerError, with the AWS SDK's error as the cause.

const token: AccessToken = {
  accessToken: "not-a-real-token",
  tokenType: "Bearer",
  expiresAt: "2026-11-26T12:10:00.000Z",
  generation: 1,
  baseUrl: "https://start.exactonline.nl",
  division: 123,
  clientId: "app-1",
};

describe("exactFetch with a failing shared rate budget", () => {
  it.each([
    ["ThrottlingException", "Rate of requests exceeds the allowed throughput."],
    [
      "AccessDeniedException",
      "User: arn:aws:sts::123456789012:assumed-role/consumer is not authorized to perform: dynamodb:UpdateItem",
    ],
  ])("throws Throttled with retryAfterSeconds and the cause for %s, sending nothing", async (name, text) => {
    const cause = Object.assign(new Error(text), { name });
    const failing = {
      send: async () => {
        throw cause;
      },
    } as unknown as DynamoDBClient;
    let calls = 0;
    const deps: ExactFetchDeps = {
      tokens: { getAccessToken: async () => token, invalidate: () => {} },
      rateBudget: new SharedRateBudget({ tableName: "rate", client: failing }),
      now: Date.now,
      fetch: async () => {
        calls += 1;
        return Response.json({ d: { results: [] } });
      },
    };

    const error = await exactFetch(deps, "acme", "crm/Accounts").then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(Throttled);
    expect((error as Throttled).name).toBe("Throttled");
    expect((error as Throttled).retryAfterSeconds).toBeGreaterThan(0);
    expect((error as Throttled).cause).toBe(cause);
    expect((error as Throttled).message).toContain(name);
    expect((error as Throttled).message).not.toContain(text);
    expect(calls).toBe(0);
  });
});
