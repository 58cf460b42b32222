import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it, vi } from "vitest";
import {
  type AccessToken,
  DeadlineExceeded,
  ExactUnavailable,
  NoDivision,
  type RateBudget,
  Throttled,
  TokenClient,
  type TokenClientOptions,
  ValidationError,
} from "../../lib/client/index.js";
import { ok, T0, tokenFor, vendAnswer } from "./support.js";

// What the simulator cannot show: Exact not answering, a caller's deadline or signal, paths that
// must never reach a request, a connection without a division. token-vend is mocked; Exact is a
// fetch that records what it was sent.

const lambda = new LambdaClient({ region: "eu-west-1" });
const lambdaMock = mockClient(lambda);
const BASE = "https://start.exactonline.nl";
let requests: Request[];
let answerWith: (request: Request) => Promise<Response>;

const fetchSpy: typeof fetch = async (input, init) => {
  const request = new Request(input, init);
  requests.push(request);
  return answerWith(request);
};

function client(options: Omit<TokenClientOptions, "lambda" | "functionName" | "fetch"> = {}): TokenClient {
  return new TokenClient({ now: () => T0, ...options, lambda, functionName: "TokenVend", fetch: fetchSpy });
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome, "expected the call to fail").toBeInstanceOf(Error);
  return outcome as Error;
}

function vends(overrides: Partial<AccessToken> = {}): void {
  lambdaMock
    .on(InvokeCommand)
    .resolves(ok(vendAnswer(1, 600, T0, { expiresInSeconds: 600, clientId: "app-1", ...overrides })));
}

beforeEach(() => {
  lambdaMock.reset();
  requests = [];
  answerWith = async () => Response.json({ d: { results: [] } });
});

describe("exactFetch: the request", () => {
  it("sends the bearer token over any Authorization given, and Accept JSON unless told otherwise", async () => {
    vends();

    await client().exactFetch("acme", "crm/Accounts", { headers: { Authorization: "Basic x" } });
    await client().exactFetch("acme", "crm/Accounts", { headers: { Accept: "application/atom+xml" } });

    expect(requests.map((r) => r.url)).toEqual([
      `${BASE}/api/v1/123456/crm/Accounts`,
      `${BASE}/api/v1/123456/crm/Accounts`,
    ]);
    expect(requests.map((r) => r.headers.get("authorization"))).toEqual([
      `Bearer ${tokenFor(1)}`,
      `Bearer ${tokenFor(1)}`,
    ]);
    expect(requests.map((r) => r.headers.get("accept"))).toEqual([
      "application/json",
      "application/atom+xml",
    ]);
  });

  it.each([
    "/crm/Accounts",
    "https://elsewhere.example/api/v1/1/crm/Accounts",
    "//elsewhere.example/api/x",
    "\\\\elsewhere.example",
  ])("refuses the path %j before any request", async (path) => {
    vends();

    await expect(client().exactFetch("acme", path)).rejects.toBeInstanceOf(ValidationError);
    expect(requests).toEqual([]);
  });

  it("throws NoDivision for a relative path of a connection without a division, and calls /api/ paths", async () => {
    vends({ division: null });

    const error = await failure(client().exactFetch("acme", "crm/Accounts"));
    const me = await client().exactFetch("acme", "/api/v1/current/Me");

    expect(error).toBeInstanceOf(NoDivision);
    expect(error.name).toBe("NoDivision");
    expect(me.status).toBe(200);
    expect(requests.map((r) => r.url)).toEqual([`${BASE}/api/v1/current/Me`]);
  });
});

describe("exactFetch: Exact not answering, deadlines", () => {
  it("turns a failed request into a retryable ExactUnavailable with the cause", async () => {
    vends();
    const cause = new TypeError("fetch failed");
    answerWith = async () => Promise.reject(cause);

    const error = await failure(client().exactFetch("acme", "crm/Accounts"));

    expect(error).toBeInstanceOf(ExactUnavailable);
    expect(error).toMatchObject({ name: "ExactUnavailable", retryAfterSeconds: 5, cause });
    expect(error.message).not.toContain(tokenFor(1));
  });

  it("stops at deadlineMs while Exact is silent: DeadlineExceeded", async () => {
    vends();
    answerWith = (request) =>
      new Promise((_, reject) =>
        request.signal.addEventListener("abort", () => reject(request.signal.reason)),
      );

    const error = await client()
      .exactFetch("acme", "crm/Accounts", { deadlineMs: T0 + 50 })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(DeadlineExceeded);
    expect(requests).toHaveLength(1);
  });

  it("gives the caller's own abort reason when its signal aborts", async () => {
    vends();
    const controller = new AbortController();
    answerWith = (request) =>
      new Promise((_, reject) =>
        request.signal.addEventListener("abort", () => reject(request.signal.reason)),
      );
    const reason = new Error("the consumer gave up");

    const call = client().exactFetch("acme", "crm/Accounts", { signal: controller.signal });
    await vi.waitFor(() => expect(requests).toHaveLength(1));
    controller.abort(reason);

    await expect(call).rejects.toBe(reason);
  });

  it("neither vends nor calls once the deadline has passed", async () => {
    vends();

    await expect(client().exactFetch("acme", "crm/Accounts", { deadlineMs: T0 })).rejects.toBeInstanceOf(
      DeadlineExceeded,
    );
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(0);
    expect(requests).toHaveLength(0);
  });
});

describe("exactFetch: the rate budget", () => {
  it("acquires with the call's deadline, and a budget's Throttled stops the call before Exact", async () => {
    vends();
    const acquire = vi
      .fn<RateBudget["acquire"]>()
      .mockRejectedValue(new Throttled("spent", { retryAfterSeconds: 9 }));
    const observe = vi.fn<RateBudget["observe"]>();

    const error = await client({ rateBudget: { acquire, observe } })
      .exactFetch("acme", "crm/Accounts", { deadlineMs: T0 + 4_000 })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(Throttled);
    expect(acquire).toHaveBeenCalledWith({ clientId: "app-1", division: 123456 }, T0 + 4_000);
    expect(requests).toHaveLength(0);
    expect(observe).not.toHaveBeenCalled();
  });

  it("counts a call against the division in its path", async () => {
    vends();
    const acquire = vi.fn<RateBudget["acquire"]>().mockResolvedValue(undefined);

    await client({ rateBudget: { acquire, observe: async () => {} } }).exactFetch(
      "acme",
      "/api/v1/777/crm/Accounts",
    );

    expect(acquire).toHaveBeenCalledWith({ clientId: "app-1", division: 777 }, expect.any(Number));
  });

  it("keeps Exact's answer when the budget fails to observe it", async () => {
    vends();
    const observe = vi.fn<RateBudget["observe"]>().mockRejectedValue(new Error("DynamoDB unavailable"));

    const response = await client({ rateBudget: { acquire: async () => {}, observe } }).exactFetch(
      "acme",
      "crm/Accounts",
    );

    expect(response.status).toBe(200);
    expect(observe).toHaveBeenCalledTimes(1);
  });
});
