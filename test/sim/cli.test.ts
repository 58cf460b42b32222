import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { CLI_DEFAULT_PORT, parseCliArgs } from "../../lib/sim/cli-args.js";
import { ALICE, APP, codeGrant } from "./helpers.js";

const ROOT = new URL("../../", import.meta.url);
const LISTENING = /^Exact Online simulator listening on (http:\/\/127\.0\.0\.1:\d+)$/;

function runCli(args: string[]): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", "lib/sim/cli.ts", ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

async function collect(stream: NodeJS.ReadableStream | null): Promise<string> {
  let text = "";
  for await (const chunk of stream ?? []) text += String(chunk);
  return text;
}

describe("npm run sim (lib/sim/cli.ts)", () => {
  const children: ChildProcess[] = [];

  afterEach(() => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });

  it("prints one line with its URL, serves with the given options and config, and exits 0 on SIGTERM", async () => {
    const configFile = join(mkdtempSync(join(tmpdir(), "sim-cli-")), "config.json");
    writeFileSync(configFile, JSON.stringify({ apps: [APP], users: [ALICE] }));
    const child = runCli([
      "--port",
      "0",
      "--access-ttl",
      "20",
      "--refresh-after",
      "15",
      "--config",
      configFile,
      "--too-early-as-401",
    ]);
    children.push(child);
    const stdout = collect(child.stdout);
    const lines = createInterface({ input: child.stdout ?? process.stdin });
    const [firstLine] = (await once(lines, "line")) as [string];
    const url = LISTENING.exec(firstLine)?.[1];

    const authorized = await fetch(`${url}/_sim/authorize`, {
      method: "POST",
      body: JSON.stringify({
        clientId: APP.clientId,
        username: ALICE.username,
        redirectUri: APP.redirectUris[0],
      }),
    });
    const { code } = (await authorized.json()) as { code: string };
    const tokens = await fetch(`${url}/api/oauth2/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(codeGrant(code)),
    });
    const body = (await tokens.json()) as { expires_in: string; refresh_token: string };
    const early = await fetch(`${url}/api/oauth2/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: body.refresh_token,
        client_id: APP.clientId,
        client_secret: APP.clientSecret,
      }),
    });
    child.kill("SIGTERM");
    const [exitCode] = await once(child, "exit");

    expect(url).toBeDefined();
    expect(body.expires_in).toBe("20");
    expect(early.status).toBe(401);
    expect(exitCode).toBe(0);
    expect(await stdout).toBe(`${firstLine}\n`);
  });

  it("revokes access tokens --access-token-revoked-after seconds after issuing them", async () => {
    const configFile = join(mkdtempSync(join(tmpdir(), "sim-cli-")), "config.json");
    writeFileSync(configFile, JSON.stringify({ apps: [APP], users: [ALICE] }));
    const child = runCli(["--port", "0", "--config", configFile, "--access-token-revoked-after", "30"]);
    children.push(child);
    const lines = createInterface({ input: child.stdout ?? process.stdin });
    const [firstLine] = (await once(lines, "line")) as [string];
    const url = LISTENING.exec(firstLine)?.[1];
    const authorized = await fetch(`${url}/_sim/authorize`, {
      method: "POST",
      body: JSON.stringify({
        clientId: APP.clientId,
        username: ALICE.username,
        redirectUri: APP.redirectUris[0],
      }),
    });
    const { code } = (await authorized.json()) as { code: string };
    const tokens = await fetch(`${url}/api/oauth2/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(codeGrant(code)),
    });
    const { access_token: accessToken } = (await tokens.json()) as { access_token: string };
    const me = async (): Promise<number> => {
      const response = await fetch(`${url}/api/v1/current/Me`, {
        headers: { authorization: `Bearer ${accessToken}`, accept: "application/json" },
      });
      await response.arrayBuffer();
      return response.status;
    };
    const advance = (advanceSeconds: number) =>
      fetch(`${url}/_sim/clock`, { method: "POST", body: JSON.stringify({ advanceSeconds }) });

    const variants = (await (await fetch(`${url}/_sim/variants`)).json()) as Record<string, unknown>;
    const fresh = await me();
    await advance(29);
    const justBefore = await me();
    await advance(2);
    const after = await me();

    expect(variants.accessTokenRevokedAfterSeconds).toBe(30);
    expect([fresh, justBefore, after]).toEqual([200, 200, 401]);
  });

  it.each([
    ["an unknown flag", ["--bogus"], /bogus/],
    ["a port that is no number", ["--port", "abc"], /--port must be a number/],
    ["an access-ttl of 0", ["--port", "0", "--access-ttl", "0"], /accessTtlSeconds/],
    ["a missing config file", ["--port", "0", "--config", "/nonexistent/sim.json"], /cannot read/],
    ["an API budget of 0", ["--port", "0", "--api-calls-per-minute", "0"], /apiCallsPerMinute/],
    [
      "a daily token cap that is no number",
      ["--daily-token-cap-per-day", "many"],
      /--daily-token-cap-per-day must be a number/,
    ],
    [
      "a revocation delay that is no number",
      ["--access-token-revoked-after", "soon"],
      /--access-token-revoked-after must be a number/,
    ],
    [
      "a negative revocation delay",
      ["--port", "0", "--access-token-revoked-after=-1"],
      /"accessTokenRevokedAfterSeconds" must be an integer from 0 to 86400/,
    ],
    [
      "a revocation delay past a day",
      ["--port", "0", "--access-token-revoked-after", "86401"],
      /"accessTokenRevokedAfterSeconds" must be an integer from 0 to 86400/,
    ],
  ])("prints a message and exits 2 for %s", async (_case, args, message) => {
    const child = runCli(args);
    children.push(child);
    const stderr = collect(child.stderr);

    const [exitCode] = await once(child, "exit");

    expect(exitCode).toBe(2);
    expect(await stderr).toMatch(message);
  });

  describe("parseCliArgs", () => {
    it("defaults the port to 8123 and leaves lifetimes to the simulator", () => {
      expect(parseCliArgs([])).toEqual({
        port: CLI_DEFAULT_PORT,
        accessTtlSeconds: undefined,
        refreshAfterSeconds: undefined,
        refreshTtlDays: undefined,
        apiCallsPerMinute: undefined,
        apiCallsPerDay: undefined,
        config: undefined,
        variants: {},
      });
    });

    it("answers help for --help", () => {
      expect(parseCliArgs(["--port", "1", "--help"])).toBe("help");
    });

    it("maps every variant flag to its variant", () => {
      const options = parseCliArgs([
        "--refresh-after",
        "15",
        "--refresh-ttl-days",
        "0.5",
        "--old-token-as-400-obsoleted",
        "--too-early-as-401",
        "--too-early-carries-refresh-token",
        "--superseded-as-invalid-grant",
        "--old-access-token-invalid-after-refresh",
        "--daily-token-cap",
        "--daily-token-cap-per-day",
        "150",
        "--access-token-revoked-after",
        "45",
      ]);

      expect(options).toMatchObject({
        refreshAfterSeconds: 15,
        refreshTtlDays: 0.5,
        variants: {
          oldTokenAs400Obsoleted: true,
          tooEarlyAs401: true,
          tooEarlyCarriesRefreshToken: true,
          supersededAsInvalidGrant: true,
          oldAccessTokenValidAfterRefresh: false,
          dailyTokenCap: true,
          dailyTokenCapPerDay: 150,
          accessTokenRevokedAfterSeconds: 45,
        },
      });
    });

    it("maps the API budgets to their options", () => {
      expect(parseCliArgs(["--api-calls-per-minute", "3", "--api-calls-per-day", "10"])).toMatchObject({
        apiCallsPerMinute: 3,
        apiCallsPerDay: 10,
      });
    });
  });
});
