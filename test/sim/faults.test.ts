import { Agent } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import {
  ALICE,
  APP,
  codeGrant,
  control,
  generationOf,
  getMe,
  login,
  OTHER_APP,
  rawRequest,
  rawTokenRequest,
  refresh,
  refreshGrant,
  START_MS,
  startTestSimulator,
} from "./helpers.js";

const OLD_TOKEN = { error: "unauthorized_client", error_description: "Old refresh token used." };

function errorCode(error: unknown): unknown {
  return (error as NodeJS.ErrnoException).code;
}

async function expectSocketError(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error, "the request should have failed at the socket").toBeDefined();
  expect(errorCode(error)).toBe(code);
}

describe("faults", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  it("latency delays the answer, then processes the request normally", async () => {
    const tokens = await login(sim);
    sim.advanceClock(570);
    sim.addFault({ kind: "latency", latencyMs: 300 });

    const startedMs = performance.now();
    const response = await refresh(sim, tokens.refreshToken);
    const elapsedMs = performance.now() - startedMs;

    expect(elapsedMs).toBeGreaterThanOrEqual(290);
    expect(response.status).toBe(200);
    expect(generationOf(sim)).toBe(2);
    const nextStartedMs = performance.now();
    await getMe(sim, tokens.accessToken);
    expect(performance.now() - nextStartedMs).toBeLessThan(250);
  });

  it.each([500, 503] as const)("status %i answers without processing", async (status) => {
    const tokens = await login(sim);
    sim.advanceClock(570);
    sim.addFault({ kind: "status", status, endpoint: "token" });

    const response = await refresh(sim, tokens.refreshToken);

    expect(response.status).toBe(status);
    expect(response.body).toEqual({
      error: "server_error",
      error_description: `Simulated fault: HTTP ${status}`,
    });
    expect(generationOf(sim)).toBe(1);
    expect(sim.stats().chains[`${APP.clientId}/${ALICE.username}`]?.tokenRequests.fault_status).toBe(1);
    expect((await refresh(sim, tokens.refreshToken)).status).toBe(200);
  });

  it("rate_limit answers 429 with Exact's minutely headers, without processing", async () => {
    const tokens = await login(sim);
    sim.advanceClock(570);
    sim.addFault({ kind: "rate_limit" });

    const response = await refresh(sim, tokens.refreshToken);

    expect(response.status).toBe(429);
    expect(response.headers.get("x-ratelimit-minutely-limit")).toBe("60");
    expect(response.headers.get("x-ratelimit-minutely-remaining")).toBe("0");
    expect(response.headers.get("x-ratelimit-minutely-reset")).toBe(String(START_MS + 600_000));
    expect(generationOf(sim)).toBe(1);
    expect(sim.stats().totals.tokenRequests.fault_rate_limit).toBe(1);
  });

  it("rate_limit without headers answers a bare 429", async () => {
    const tokens = await login(sim);
    sim.addFault({ kind: "rate_limit", rateLimitHeaders: false });

    const response = await getMe(sim, tokens.accessToken);

    expect(response.status).toBe(429);
    expect([...response.headers.keys()].filter((name) => name.startsWith("x-ratelimit"))).toEqual([]);
  });

  it("reset drops the connection without processing: the refresh token stays current", async () => {
    const tokens = await login(sim);
    sim.advanceClock(570);
    sim.addFault({ kind: "reset", endpoint: "token" });

    await expectSocketError(rawTokenRequest(sim, refreshGrant(tokens.refreshToken)), "ECONNRESET");

    expect(generationOf(sim)).toBe(1);
    expect(sim.stats().totals.tokenRequests.fault_reset).toBe(1);
    expect((await refresh(sim, tokens.refreshToken)).status).toBe(200);
  });

  it("rotate_then_drop advances the chain, then drops the connection: the sent refresh token is dead", async () => {
    const tokens = await login(sim);
    sim.advanceClock(570);
    sim.addFault({ kind: "rotate_then_drop" });

    await expectSocketError(rawTokenRequest(sim, refreshGrant(tokens.refreshToken)), "ECONNRESET");

    expect(generationOf(sim)).toBe(2);
    expect(sim.stats().totals.tokenRequests).toMatchObject({ fault_rotate_then_drop: 1, refreshed: 0 });
    expect((await refresh(sim, tokens.refreshToken)).body).toEqual(OLD_TOKEN);
  });

  it("rotate_then_drop on a code exchange starts the chain the client never hears of", async () => {
    const code = sim.authorize({
      clientId: APP.clientId,
      username: ALICE.username,
      redirectUri: APP.redirectUris[0] ?? "",
    });
    sim.addFault({ kind: "rotate_then_drop", endpoint: "token" });

    await expectSocketError(rawTokenRequest(sim, codeGrant(code)), "ECONNRESET");

    expect(sim.stats().chains[`${APP.clientId}/${ALICE.username}`]).toMatchObject({
      generation: 1,
      chainsStarted: 1,
    });
  });

  it("refuse closes the port for durationMs, then listens again with the state intact", async () => {
    await login(sim);
    const keepAlive = new Agent({ keepAlive: true });
    try {
      const created = await rawRequest(`${sim.url}/_sim/faults`, {
        method: "POST",
        body: JSON.stringify({ kind: "refuse", durationMs: 300 }),
        agent: keepAlive,
      });

      // Neither a pooled connection (node:http's agent, undici's pool) nor a new one gets through.
      await expectSocketError(rawRequest(`${sim.url}/_sim/stats`, { agent: keepAlive }), "ECONNREFUSED");
      await expect(fetch(`${sim.url}/_sim/stats`)).rejects.toMatchObject({ cause: { code: "ECONNREFUSED" } });
      await expectSocketError(rawRequest(`${sim.url}/_sim/stats`), "ECONNREFUSED");
      expect(created.status).toBe(201);
    } finally {
      keepAlive.destroy();
    }
    let recovered: Awaited<ReturnType<typeof rawRequest>> | undefined;
    const deadlineMs = Date.now() + 5000;
    while (recovered === undefined && Date.now() < deadlineMs) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      recovered = await rawRequest(`${sim.url}/_sim/stats`).catch(() => undefined);
    }
    expect(recovered?.status).toBe(200);
    expect(JSON.parse(recovered?.body ?? "{}").totals.chainsStarted).toBe(1);
  });

  it("hits only the given client and endpoint", async () => {
    const tokens = await login(sim);
    sim.advanceClock(570);
    sim.addFault({ kind: "status", clientId: OTHER_APP.clientId });
    sim.addFault({ kind: "status", clientId: APP.clientId, endpoint: "me" });

    expect((await refresh(sim, tokens.refreshToken)).status).toBe(200);
    expect((await getMe(sim, tokens.accessToken)).status).toBe(500);
    expect((await getMe(sim, tokens.accessToken)).status).toBe(200);
  });

  it("count hits the next N matching requests, faults in the order they were created", async () => {
    const tokens = await login(sim);
    sim.addFault({ kind: "status", status: 503, count: 2 });
    sim.addFault({ kind: "rate_limit" });

    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await getMe(sim, tokens.accessToken)).status);
    }

    expect(statuses).toEqual([503, 503, 429, 200]);
  });

  it("probability with a seed hits a reproducible share of requests and stays until deleted", async () => {
    const tokens = await login(sim);
    const pattern = async (seed: number): Promise<number[]> => {
      sim.clearFaults();
      sim.addFault({ kind: "status", probability: 0.5, seed });
      const statuses: number[] = [];
      for (let i = 0; i < 24; i++) {
        statuses.push((await getMe(sim, tokens.accessToken)).status);
      }
      return statuses;
    };

    const first = await pattern(42);
    const again = await pattern(42);
    const other = await pattern(7);

    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
    expect(first.filter((status) => status === 500).length).toBeGreaterThan(4);
    expect(first.filter((status) => status === 200).length).toBeGreaterThan(4);
  });

  it.each([
    [0, 200],
    [1, 500],
  ])("probability %d hits never or always", async (probability, expected) => {
    const tokens = await login(sim);
    sim.addFault({ kind: "status", probability });

    const statuses = [await getMe(sim, tokens.accessToken), await getMe(sim, tokens.accessToken)].map(
      (response) => response.status,
    );

    expect(statuses).toEqual([expected, expected]);
  });

  it("faulted answers do not count toward the error limit", async () => {
    const tokens = await login(sim);
    sim.addFault({ kind: "rate_limit", count: 12 });
    for (let i = 0; i < 12; i++) {
      expect((await refresh(sim, tokens.refreshToken)).status).toBe(429);
    }
    sim.advanceClock(570);

    const response = await refresh(sim, tokens.refreshToken);

    expect(response.status).toBe(200);
    expect(sim.stats().totals.tokenRequests.error_limited).toBe(0);
  });

  it("lists faults with what is left of them and deletes them all", async () => {
    const tokens = await login(sim);
    await control(sim, "POST", "/_sim/faults", { kind: "latency", latencyMs: 5, count: 3, endpoint: "me" });
    const created = await control(sim, "POST", "/_sim/faults", {
      kind: "status",
      probability: 0.25,
      seed: 9,
    });
    await getMe(sim, tokens.accessToken);

    const listed = await control(sim, "GET", "/_sim/faults");
    const deleted = await control(sim, "DELETE", "/_sim/faults");

    expect(created.status).toBe(201);
    expect(created.body.id).toMatch(/^f\d+$/);
    expect(listed.body.faults).toEqual([
      expect.objectContaining({ kind: "latency", latencyMs: 5, count: 2, endpoint: "me" }),
      expect.objectContaining({
        id: created.body.id,
        kind: "status",
        status: 500,
        probability: 0.25,
        seed: 9,
      }),
    ]);
    expect(deleted.body).toEqual({ removed: 2 });
    expect((await control(sim, "GET", "/_sim/faults")).body).toEqual({ faults: [] });
  });
});
