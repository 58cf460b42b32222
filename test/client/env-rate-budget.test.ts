import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CreateTableCommand, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { EnvRateBudget, RATE_BUDGET_TABLE_ENV } from "../../lib/client/env-rate-budget.js";
import * as client from "../../lib/client/index.js";
import type { RateBudget } from "../../lib/client/rate-budget.js";
import { LOCAL_AWS_ENV, type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";
import { budgetItemKey, createRateBudgetTableInput } from "../../lib/ratebudget/budget-table.js";
import { DAY_MS } from "../../lib/ratebudget/rate-windows.js";
import { ok, vendAnswer } from "./support.js";

const KEY = { clientId: "3f1c2a5e-0000-4000-8000-00000000e4b1", division: 123456 } as const;
const OBSERVATION = { rateLimited: false } as const;

describe("EnvRateBudget", () => {
  /** A loader that counts what it was asked for, and budgets that record their calls. */
  function recordingLoader() {
    const loads: string[] = [];
    const calls: string[] = [];
    const load = async (tableName: string): Promise<RateBudget> => {
      loads.push(tableName);
      return {
        acquire: async (key) => void calls.push(`acquire ${tableName} ${key.division}`),
        observe: async (key) => void calls.push(`observe ${tableName} ${key.division}`),
      };
    };
    return { loads, calls, load };
  }

  beforeEach(() => {
    vi.unstubAllEnvs();
  });

  it("is no budget while RATE_BUDGET_TABLE_NAME is unset: nothing is loaded, every call resolves at once", async () => {
    vi.stubEnv(RATE_BUDGET_TABLE_ENV, "");
    const { loads, calls, load } = recordingLoader();
    const budget = new EnvRateBudget({ load });

    await budget.acquire(KEY, Date.now() + 1_000);
    await budget.observe(KEY, OBSERVATION);

    expect({ loads, calls }).toEqual({ loads: [], calls: [] });
  });

  it("loads the budget of the table the variable names once, at its first call, and asks it", async () => {
    vi.stubEnv(RATE_BUDGET_TABLE_ENV, "budget-a");
    const { loads, calls, load } = recordingLoader();
    const budget = new EnvRateBudget({ load });

    expect(loads).toEqual([]);
    await Promise.all([budget.acquire(KEY, Date.now() + 1_000), budget.acquire(KEY, Date.now() + 1_000)]);
    await budget.observe(KEY, OBSERVATION);

    expect(loads).toEqual(["budget-a"]);
    expect(calls).toEqual([
      `acquire budget-a ${KEY.division}`,
      `acquire budget-a ${KEY.division}`,
      `observe budget-a ${KEY.division}`,
    ]);
  });

  it("reads the variable at each call, as the client reads TOKEN_VEND_FUNCTION_NAME", async () => {
    const { loads, load } = recordingLoader();
    const budget = new EnvRateBudget({ load });

    vi.stubEnv(RATE_BUDGET_TABLE_ENV, "budget-a");
    await budget.acquire(KEY, Date.now() + 1_000);
    vi.stubEnv(RATE_BUDGET_TABLE_ENV, "budget-b");
    await budget.acquire(KEY, Date.now() + 1_000);

    expect(loads).toEqual(["budget-a", "budget-b"]);
  });

  it("loads again after a failed load instead of keeping the failure", async () => {
    vi.stubEnv(RATE_BUDGET_TABLE_ENV, "budget-a");
    let attempts = 0;
    const budget = new EnvRateBudget({
      load: async () => {
        attempts += 1;
        if (attempts === 1) throw new Error("import failed");
        return { acquire: async () => {}, observe: async () => {} };
      },
    });

    await expect(budget.acquire(KEY, Date.now() + 1_000)).rejects.toThrow("import failed");
    await budget.acquire(KEY, Date.now() + 1_000);

    expect(attempts).toBe(2);
  });
});

describe("the module functions (exactFetch) with the shared rate budget", () => {
  // The module functions build their own LambdaClient (mocked: no local Lambda engine) and the
  // budget its own DynamoDBClient, which the SDK points at dynalite through the environment.
  const lambdaMock = mockClient(LambdaClient);
  let dynamo: LocalDynamo;
  let exact: Server;
  let exactUrl: string;
  const exactCalls: string[] = [];
  const tableName = `rate-budget-env-${process.pid}`;

  beforeAll(async () => {
    dynamo = await startDynalite();
    await dynamo.client.send(new CreateTableCommand(createRateBudgetTableInput(tableName)));
    exact = createServer((request, response) => {
      exactCalls.push(`${request.method} ${request.url}`);
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ d: { results: [] } }));
    });
    await new Promise<void>((resolve) => exact.listen(0, "127.0.0.1", () => resolve()));
    exactUrl = `http://127.0.0.1:${(exact.address() as AddressInfo).port}`;
    vi.stubEnv("TOKEN_VEND_FUNCTION_NAME", "arn:aws:lambda:eu-west-1:123456789012:function:TokenVend");
    vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", dynamo.endpoint);
    for (const [name, value] of Object.entries(LOCAL_AWS_ENV)) vi.stubEnv(name, value);
    lambdaMock
      .on(InvokeCommand)
      .resolves(ok(vendAnswer(1, 600, Date.now(), { baseUrl: exactUrl, clientId: KEY.clientId })));
  });

  afterAll(async () => {
    lambdaMock.restore();
    vi.unstubAllEnvs();
    await new Promise<void>((resolve) => exact?.close(() => resolve()));
    await dynamo?.close();
  });

  async function budgetItem(): Promise<Record<string, string | undefined> | undefined> {
    const out = await dynamo.client.send(
      new GetItemCommand({
        TableName: tableName,
        Key: { pk: { S: budgetItemKey(KEY, Math.floor(Date.now() / DAY_MS)) } },
        ConsistentRead: true,
      }),
    );
    return out.Item && Object.fromEntries(Object.entries(out.Item).map(([k, v]) => [k, v.N ?? v.S]));
  }

  it("does not pace the calls while RATE_BUDGET_TABLE_NAME is unset: the table stays empty", async () => {
    vi.stubEnv(RATE_BUDGET_TABLE_ENV, "");

    const response = await client.exactFetch("acme", "crm/Accounts?$top=1");

    expect(response.status).toBe(200);
    expect(exactCalls).toEqual([`GET /api/v1/${KEY.division}/crm/Accounts?$top=1`]);
    expect(await budgetItem()).toBeUndefined();
  });

  it("takes each call's slot from the table RATE_BUDGET_TABLE_NAME names", async () => {
    vi.stubEnv(RATE_BUDGET_TABLE_ENV, tableName);
    exactCalls.length = 0;

    const response = await client.exactFetch("acme", "crm/Accounts?$top=1");

    expect(response.status).toBe(200);
    expect(exactCalls).toHaveLength(1);
    expect(await budgetItem()).toMatchObject({ dayCalls: "1" });
  });
});
