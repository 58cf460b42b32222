import { afterEach, describe, expect, it } from "vitest";
import { ExitCode } from "../../lib/cli/exit-codes.js";
import { type CliIo, runCli, USAGE } from "../../lib/cli/main.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { findLeaks } from "../support/leak-guard.js";

interface Captured {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function cli(fx: Fixture, ...argv: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env: { ...fx.stack.env },
    dynamo: fx.stack.dynamo.client,
    broker: () => fx.broker(),
  };
  const code = await runCli(argv, io);
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** `connection add` for a second app of the fixture's user, with extra flags. */
function add(fx: Fixture, id: string, ...extra: string[]): Promise<Captured> {
  fx.stack.sim.addApp({
    clientId: `app-${id}`,
    clientSecret: `cs-sEcReT-app-${id}-0123456789`,
    redirectUris: [`https://cb.example.com/${id}`],
  });
  fx.stack.writeSecret(`exact/${id}`, { clientSecret: `cs-sEcReT-app-${id}-0123456789` });
  return cli(
    fx,
    "connection",
    "add",
    "--id",
    id,
    "--client-id",
    `app-${id}`,
    "--base-url",
    fx.stack.sim.url,
    "--redirect-uri",
    `https://cb.example.com/${id}`,
    "--secret-id",
    `exact/${id}`,
    ...extra,
  );
}

async function seed(fx: Fixture, id: string): Promise<Captured> {
  const code = fx.stack.sim.authorize({
    clientId: `app-${id}`,
    username: fx.conn.username,
    redirectUri: `https://cb.example.com/${id}`,
  });
  return cli(fx, "connection", "seed", "--id", id, "--code", code);
}

async function statusJson(fx: Fixture, id: string): Promise<Record<string, unknown>> {
  const status = await cli(fx, "status", "--id", id, "--json");
  expect(findLeaks(status.out)).toEqual([]);
  return JSON.parse(status.out) as Record<string, unknown>;
}

describe("exact-broker and the pinned division", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it.each([["0"], ["-5"], ["12ab"], ["1.5"], ["2147483648"], [""]])(
    "refuses connection add --division %j with exit 2 and says what a division is",
    async (raw) => {
      fx = await startFixture({ seed: false });

      const added = await add(fx, "x", `--division=${raw}`);

      expect(added.code).toBe(ExitCode.BadInput);
      expect(added.err).toMatch(/--division must be an Exact division number: a whole number from 1/);
      expect(await fx.store().get("x")).toBeUndefined();
    },
  );

  it("pins the division given at add, and status shows it as the operator's", async () => {
    fx = await startFixture({ seed: false });
    fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [123456, 222222] });

    const added = await add(fx, "x", "--division", "222222");
    expect(added).toMatchObject({ code: ExitCode.Done, out: expect.stringContaining("division 222222") });
    expect(await statusJson(fx, "x")).toMatchObject({
      division: 222222,
      pinnedDivision: 222222,
      divisionPinnedBy: "operator",
    });
    const seeded = await seed(fx, "x");

    expect(seeded).toMatchObject({ code: ExitCode.Done, out: expect.stringContaining("division 222222") });
    expect(JSON.parse((await cli(fx, "vend", "--id", "x")).out)).toMatchObject({ division: 222222 });
    expect((await cli(fx, "status", "--id", "x")).out).toMatch(/division\s+222222 \(pinned by an operator\)/);
  });

  it("pins Me's division at first consent, and status says so", async () => {
    fx = await startFixture({ seed: false });
    await add(fx, "x");
    expect((await cli(fx, "status", "--id", "x")).out).toMatch(
      /division\s+- \(not pinned yet; the first consent pins it\)/,
    );

    await seed(fx, "x");

    expect(await statusJson(fx, "x")).toMatchObject({
      division: 123456,
      pinnedDivision: 123456,
      divisionPinnedBy: "consent",
    });
    expect((await cli(fx, "status", "--id", "x")).out).toMatch(
      /division\s+123456 \(pinned at first consent\)/,
    );
  });

  it("set-division accepts a division the user can open; vends and status follow", async () => {
    fx = await startFixture();
    fx.stack.sim.setUserDivisions(fx.conn.username, { divisions: [123456, 333333] });

    const set = await cli(
      fx,
      "connection",
      "set-division",
      "--id",
      fx.conn.connectionId,
      "--division",
      "333333",
    );

    expect(set.code).toBe(ExitCode.Done);
    expect(set.out).toContain("now gives consumers division 333333 (was 123456)");
    expect(set.out).toContain(`Exact user ${fx.conn.username} can open it`);
    expect(await statusJson(fx, fx.conn.connectionId)).toMatchObject({
      division: 333333,
      pinnedDivision: 333333,
      divisionPinnedBy: "operator",
    });
    expect(JSON.parse((await cli(fx, "vend", "--id", fx.conn.connectionId)).out)).toMatchObject({
      division: 333333,
    });
    const again = await cli(
      fx,
      "connection",
      "set-division",
      "--id",
      fx.conn.connectionId,
      "--division",
      "333333",
    );
    expect(again).toMatchObject({ code: ExitCode.Done, out: expect.stringContaining("already gives") });
  });

  it("set-division refuses a division the user cannot open with exit 4 and says why", async () => {
    fx = await startFixture();

    const set = await cli(
      fx,
      "connection",
      "set-division",
      "--id",
      fx.conn.connectionId,
      "--division",
      "333333",
    );

    expect(set.code).toBe(ExitCode.Refused);
    expect(set.err).toContain(`Exact user ${fx.conn.username} cannot open division 333333`);
    expect(set.err).toContain("keeps division 123456");
    expect(await statusJson(fx, fx.conn.connectionId)).toMatchObject({
      division: 123456,
      divisionPinnedBy: "consent",
    });
  });

  it.each([
    [["connection", "set-division", "--id", "x"], /--division is required/, ExitCode.BadInput],
    [
      ["connection", "set-division", "--id", "x", "--division", "abc"],
      /--division must be/,
      ExitCode.BadInput,
    ],
    [["connection", "set-division", "--id", "nope", "--division", "1"], /does not exist/, ExitCode.NotFound],
  ])("set-division %j: a clear message and exit %s", async (argv, message, exit) => {
    fx = await startFixture({ seed: false });

    const result = await cli(fx, ...argv);

    expect(result.code).toBe(exit);
    expect(result.err).toMatch(message);
  });

  it("lists set-division and --division in the usage", () => {
    expect(USAGE).toContain("exact-broker connection set-division --id ID --division N");
    expect(USAGE).toContain("[--division N]");
  });
});
