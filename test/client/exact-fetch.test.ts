import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type AccessToken,
  BrokerError,
  ExactBadRequest,
  ExactForbidden,
  ExactNotFound,
  ExactServerError,
  ExactUnauthorized,
  type RateBudget,
  type RateKey,
  type RateLimitObservation,
  Throttled,
} from "../../lib/client/index.js";
import { type ExactStack, startExactStack } from "./exact-stack.js";

// exactFetch and exactPages against the simulator's REST API over HTTP, with tokens from the real
// token-vend handler (see exact-stack.ts). Each test starts at the start of a fresh minute of sim
// time, so the per-minute budget (6 calls here) is whole.
const CALLS_PER_MINUTE = 6;

let stack: ExactStack;
let token: AccessToken;

/** Everything a log line could print of an error: message, stack, own fields, the cause's too. */
function printable(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const own = Object.fromEntries(Object.entries(error).filter(([key]) => key !== "cause"));
  return [String(error), error.stack ?? "", JSON.stringify(own), printable(error.cause ?? "")].join("\n");
}

async function failure(promise: Promise<unknown>): Promise<BrokerError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome, "expected the call to fail").toBeInstanceOf(BrokerError);
  expect(printable(outcome)).not.toContain(token.accessToken);
  return outcome as BrokerError;
}

beforeAll(async () => {
  stack = await startExactStack(CALLS_PER_MINUTE);
  token = await stack.consumer().getAccessToken(stack.fixture.conn.connectionId);
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

beforeEach(() => {
  // One second into the next minute of sim time: a test's calls all fall in one fixed window.
  const intoMinuteMs = stack.fixture.clock.now() % 60_000;
  stack.fixture.clock.advance((60_000 - intoMinuteMs + 1_000) / 1000);
  stack.fixture.stack.sim.clearScripts();
});

describe("exactFetch", () => {
  it("puts a relative path under the connection's division, with a bearer token and Accept JSON", async () => {
    const id = stack.fixture.conn.connectionId;

    const response = await stack.consumer().exactFetch(id, "crm/Accounts?$top=1");
    const body = (await response.json()) as { d: { results: Array<{ __metadata: { uri: string } }> } };

    expect(token.division).toEqual(expect.any(Number));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(body.d.results).toHaveLength(1);
    expect(body.d.results[0]?.__metadata.uri).toContain(
      `${token.baseUrl}/api/v1/${token.division}/crm/Accounts(`,
    );
  });

  it("takes a path starting with /api/ as it is", async () => {
    const response = await stack.consumer().exactFetch(stack.fixture.conn.connectionId, "/api/v1/current/Me");
    const me = (await response.json()) as { d: { results: Array<{ UserName: string }> } };

    expect(me.d.results[0]?.UserName).toBe(stack.fixture.conn.username);
  });

  it.each([
    [
      "400",
      "crm/Accounts?$top=many",
      ExactBadRequest,
      { status: 400, exactMessage: "$top must be a whole number." },
    ],
    ["403", "/api/v1/999/crm/Accounts", ExactForbidden, { status: 403, reason: "NoDivisionAccess" }],
    ["404", "crm/NoSuchThings", ExactNotFound, { status: 404 }],
  ] as const)(
    "maps Exact's %s to a typed error with a stable name",
    async (_status, path, errorClass, fields) => {
      const error = await failure(stack.consumer().exactFetch(stack.fixture.conn.connectionId, path));

      expect(error).toBeInstanceOf(errorClass);
      expect(error.name).toBe(errorClass.name);
      expect(error).toMatchObject({ ...fields, retryAfterSeconds: undefined });
    },
  );

  it("maps a 5xx to ExactServerError, retryable after Exact's Retry-After", async () => {
    stack.fixture.stack.sim.addScript({
      endpoint: "api",
      clientId: stack.fixture.conn.clientId,
      status: 503,
      headers: { "Retry-After": "7" },
      json: { error: { code: "", message: { lang: "", value: "Service Unavailable" } } },
    });

    const error = await failure(stack.consumer().exactFetch(stack.fixture.conn.connectionId, "crm/Accounts"));

    expect(error).toBeInstanceOf(ExactServerError);
    expect(error).toMatchObject({ name: "ExactServerError", status: 503, retryAfterSeconds: 7 });
    expect(error.message).toContain("Service Unavailable");
  });

  it("maps a 429 to Throttled, retryable when the minute's budget is back", async () => {
    const consumer = stack.consumer();
    const id = stack.fixture.conn.connectionId;
    for (let call = 0; call < CALLS_PER_MINUTE; call += 1)
      await consumer.exactFetch(id, "crm/Accounts?$top=1");

    const error = await failure(consumer.exactFetch(id, "crm/Accounts?$top=1"));

    const nowMs = stack.fixture.stack.sim.nowMs();
    const minuteEndMs = (Math.floor(nowMs / 60_000) + 1) * 60_000;
    expect(error).toBeInstanceOf(Throttled);
    expect(error.name).toBe("Throttled");
    expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(
      Math.abs((error.retryAfterSeconds ?? 0) - Math.ceil((minuteEndMs - nowMs) / 1000)),
    ).toBeLessThanOrEqual(1);
  });
});

describe("exactFetch after a 401", () => {
  it("reports the refused generation to token-vend and retries once with what it serves", async () => {
    const consumer = stack.consumer();
    const id = stack.fixture.conn.connectionId;
    const held = await consumer.getAccessToken(id);
    stack.fixture.stack.sim.addScript({
      endpoint: "api",
      clientId: stack.fixture.conn.clientId,
      status: 401,
      json: { error: { code: "", message: { lang: "", value: "Unauthorized" } } },
    });
    const eventsBefore = stack.events.length;

    const response = await consumer.exactFetch(id, "crm/Accounts?$top=1");

    expect(response.status).toBe(200);
    expect(stack.events.slice(eventsBefore)).toEqual([
      { connectionId: id, minValiditySeconds: 30, rejectedGeneration: held.generation },
    ]);
  });

  it("throws ExactUnauthorized when the token token-vend serves after the report is refused too", async () => {
    const consumer = stack.consumer();
    const id = stack.fixture.conn.connectionId;
    await consumer.getAccessToken(id);
    stack.fixture.stack.sim.addScript({
      endpoint: "api",
      clientId: stack.fixture.conn.clientId,
      count: 2,
      status: 401,
      json: { error: { code: "", message: { lang: "", value: "Unauthorized" } } },
    });
    const eventsBefore = stack.events.length;

    const error = await failure(consumer.exactFetch(id, "crm/Accounts?$top=1"));

    expect(error).toBeInstanceOf(ExactUnauthorized);
    expect(error).toMatchObject({ name: "ExactUnauthorized", status: 401, exactMessage: "Unauthorized" });
    // One retry, through one vend: no loop.
    expect(stack.events.length - eventsBefore).toBe(1);
  });
});

describe("exactPages", () => {
  /** A RateBudget that records what it was told. */
  function recordingBudget() {
    const acquired: RateKey[] = [];
    const observed: Array<[RateKey, RateLimitObservation]> = [];
    const budget: RateBudget = {
      acquire: async (key) => void acquired.push(key),
      observe: async (key, observation) => void observed.push([key, observation]),
    };
    return { budget, acquired, observed };
  }

  it("follows __next page by page, each page one call through the rate budget", async () => {
    const { budget, acquired, observed } = recordingBudget();
    const consumer = stack.consumer({ rateBudget: budget });
    const division = token.division as number;
    const before = stack.apiCounts(division).ok ?? 0;

    const pages: unknown[][] = [];
    for await (const rows of consumer.exactPages(stack.fixture.conn.connectionId, "crm/Accounts?$top=150"))
      pages.push(rows);

    expect(pages.map((rows) => rows.length)).toEqual([60, 60, 30]);
    expect(new Set(pages.flat().map((row) => (row as { ID: string }).ID)).size).toBe(150);
    expect((stack.apiCounts(division).ok ?? 0) - before).toBe(3);
    expect(token.clientId, "token-vend's answer carries clientId (issue 11)").toBe(
      stack.fixture.conn.clientId,
    );
    const key = { clientId: stack.fixture.conn.clientId, division };
    expect(acquired).toEqual([key, key, key]);
    expect(observed.map(([k]) => k)).toEqual([key, key, key]);
    expect(observed.map(([, o]) => o.minutelyRemaining)).toEqual([5, 4, 3]);
    expect(observed.every(([, o]) => o.rateLimited === false && o.dailyRemaining !== undefined)).toBe(true);
  });

  it("refuses a __next that leads off the connection's host, sending no token there", async () => {
    stack.fixture.stack.sim.addScript({
      endpoint: "api",
      clientId: stack.fixture.conn.clientId,
      status: 200,
      json: { d: { results: [{ ID: "1" }], __next: "https://elsewhere.example/api/v1/1/crm/Accounts" } },
    });
    const pages: unknown[][] = [];

    const error = await failure(
      (async () => {
        for await (const rows of stack.consumer().exactPages(stack.fixture.conn.connectionId, "crm/Accounts"))
          pages.push(rows);
      })(),
    );

    expect(pages).toEqual([[{ ID: "1" }]]);
    expect(error).toMatchObject({ name: "ExactApiError", status: 200 });
    expect(error.message).toContain("__next");
  });
});
