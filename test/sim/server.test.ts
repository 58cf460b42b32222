import { once } from "node:events";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { ValidationError } from "../../lib/errors.js";
import { isLoopbackAddress } from "../../lib/sim/http.js";
import { type Simulator, startSimulator } from "../../lib/sim/server.js";
import { login, rawRequest, refresh, startTestSimulator } from "./helpers.js";

async function refusedNow(sim: Simulator): Promise<boolean> {
  return rawRequest(`${sim.url}/_sim/stats`).then(
    () => false,
    (error: NodeJS.ErrnoException) => error.code === "ECONNREFUSED",
  );
}

async function waitUntilServing(sim: Simulator, timeoutMs = 5000): Promise<number> {
  const deadlineMs = Date.now() + timeoutMs;
  while (Date.now() < deadlineMs) {
    const status = await rawRequest(`${sim.url}/_sim/stats`).then(
      (response) => response.status,
      () => undefined,
    );
    if (status !== undefined) return status;
    await sleep(25);
  }
  throw new Error("the simulator did not listen again");
}

describe("startSimulator", () => {
  it("listens on 127.0.0.1 on a free port and lets it go on close", async () => {
    const sim = await startSimulator();
    const serving = (await fetch(`${sim.url}/_sim/stats`)).status;

    await sim.close();

    expect(sim.port).toBeGreaterThan(0);
    expect(sim.url).toBe(`http://127.0.0.1:${sim.port}`);
    expect(serving).toBe(200);
    expect(await refusedNow(sim)).toBe(true);
  });

  it("listens on the port it is given", async () => {
    const probe = await startSimulator();
    const { port } = probe;
    await probe.close();

    const sim = await startSimulator({ port });
    try {
      expect(sim.url).toBe(`http://127.0.0.1:${port}`);
      expect((await fetch(`${sim.url}/_sim/stats`)).status).toBe(200);
    } finally {
      await sim.close();
    }
  });

  it("allows a refresh accessTtlSeconds - 30 after the last issuance by default", async () => {
    const sim = await startTestSimulator({ accessTtlSeconds: 100 });
    try {
      const tokens = await login(sim);
      sim.advanceClock(69);
      expect((await refresh(sim, tokens.refreshToken)).status).toBe(400);
      sim.advanceClock(1);
      expect((await refresh(sim, tokens.refreshToken)).status).toBe(200);
    } finally {
      await sim.close();
    }
  });

  it("never puts the default refresh-after below 0", async () => {
    const sim = await startTestSimulator({ accessTtlSeconds: 20 });
    try {
      const tokens = await login(sim);
      expect((await refresh(sim, tokens.refreshToken)).status).toBe(200);
    } finally {
      await sim.close();
    }
  });

  it.each([
    ["accessTtlSeconds 0", { accessTtlSeconds: 0 }],
    ["fractional accessTtlSeconds", { accessTtlSeconds: 1.5 }],
    ["negative refreshAfterSeconds", { refreshAfterSeconds: -1 }],
    ["refreshTtlDays 0", { refreshTtlDays: 0 }],
    ["a port above 65535", { port: 70_000 }],
    [
      "an app without secret in config",
      { config: { apps: [{ clientId: "x", redirectUris: ["https://x/cb"] }] } },
    ],
    [
      "a user twice in config",
      {
        config: {
          users: [
            { username: "u", password: "p", totpSecret: "GEZDGNBV" },
            { username: "u", password: "p", totpSecret: "GEZDGNBV" },
          ],
        },
      },
    ],
    ["an unknown variant", { variants: { tooEarlyAs402: true } }],
    ["apiCallsPerMinute 0", { apiCallsPerMinute: 0 }],
    ["fractional apiCallsPerDay", { apiCallsPerDay: 10.5 }],
    ["dailyTokenCapPerDay 0", { variants: { dailyTokenCap: true, dailyTokenCapPerDay: 0 } }],
  ])("rejects %s with a ValidationError", async (_case, options) => {
    await expect(startSimulator(options as never)).rejects.toBeInstanceOf(ValidationError);
  });

  it.each([
    ["127.0.0.1", true],
    ["127.8.9.10", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["10.0.0.1", false],
    ["::ffff:192.168.1.2", false],
    [undefined, false],
  ])("treats %s as loopback: %s", (address, loopback) => {
    expect(isLoopbackAddress(address)).toBe(loopback);
  });

  describe("refusal", () => {
    it("keeps trying to listen again when the port was taken meanwhile", async () => {
      const sim = await startSimulator();
      try {
        sim.addFault({ kind: "refuse", durationMs: 50 });
        const squatter = createServer((socket) => socket.destroy()).listen(sim.port, "127.0.0.1");
        await once(squatter, "listening");
        await sleep(150);
        squatter.close();

        expect(await waitUntilServing(sim)).toBe(200);
      } finally {
        await sim.close();
      }
    });

    it("extends a running refusal to the later end", async () => {
      const sim = await startSimulator();
      try {
        sim.addFault({ kind: "refuse", durationMs: 50 });
        sim.addFault({ kind: "refuse", durationMs: 300 });
        await sleep(150);

        expect(await refusedNow(sim)).toBe(true);
        expect(await waitUntilServing(sim)).toBe(200);
      } finally {
        await sim.close();
      }
    });

    it("closes cleanly while refusing", async () => {
      const sim = await startSimulator();
      sim.addFault({ kind: "refuse", durationMs: 100 });

      await sim.close();
      await sleep(150);

      expect(await refusedNow(sim)).toBe(true);
    });
  });
});
