import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../../lib/broker.js";
import { ExitCode } from "../../lib/cli/exit-codes.js";
import { type CliIo, runCli } from "../../lib/cli/main.js";
import { createSecretsManagerWriter } from "../../lib/secrets/secret-writer.js";
import { createSecretsManagerSource } from "../../lib/secrets/secrets-manager-source.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { LEAK_PATTERN } from "../support/leak-guard.js";
import { type MotoServer, startMotoServer } from "../support/moto-server.js";

// In AWS mode the CLI and the engine read and write Secrets Manager served by moto_server over
// real HTTP; DynamoDB is dynalite and Exact the simulator, as everywhere.

interface Captured {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Seconds from a chain's start until its refresh window is open. */
const WINDOW = 572;
const REDIRECT = "https://cb.example.com/mig";

let moto: MotoServer;
let sm: SecretsManagerClient;

beforeAll(async () => {
  moto = await startMotoServer();
  sm = new SecretsManagerClient({
    region: "eu-west-1",
    endpoint: moto.endpoint,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
}, 60_000);

afterAll(async () => {
  sm?.destroy();
  await moto?.close();
});

/** The CLI in process; `aws` runs it as in AWS: no LOCAL_SECRETS_FILE, secrets in moto. */
async function cli(fx: Fixture, options: { aws: boolean }, ...argv: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const { LOCAL_SECRETS_FILE: _file, ...awsEnv } = fx.stack.env;
  const io: CliIo = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env: options.aws ? awsEnv : { ...fx.stack.env },
    dynamo: fx.stack.dynamo.client,
    broker: () => fx.broker(),
    ...(options.aws
      ? {
          secretWriter: createSecretsManagerWriter(sm),
          secretSource: createSecretsManagerSource({ client: sm, maxAgeSeconds: 0 }),
        }
      : {}),
  };
  const code = await runCli(argv, io);
  const captured = { code, out: out.join("\n"), err: err.join("\n") };
  expect(`${captured.out}\n${captured.err}`).not.toMatch(LEAK_PATTERN);
  return captured;
}

/** A broker whose secrets are moto's, as the functions read them in AWS (no cache: each read is a call). */
function awsBroker(fx: Fixture): Broker {
  return fx.broker({ secrets: createSecretsManagerSource({ client: sm, maxAgeSeconds: 0 }) });
}

async function secretValue(secretId: string): Promise<unknown> {
  try {
    const out = await sm.send(new GetSecretValueCommand({ SecretId: secretId }));
    return JSON.parse(out.SecretString ?? "null");
  } catch (error) {
    if (error instanceof ResourceNotFoundException) return undefined;
    throw error;
  }
}

function secretFile(secret: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), "secret-")), "secret.json");
  writeFileSync(file, JSON.stringify(secret));
  return file;
}

/** The fixture's Exact user under a second app, as a connection `id` whose secret is `secretId`. */
async function addConnection(fx: Fixture, id: string, secretId: string): Promise<{ clientSecret: string }> {
  const clientSecret = `cs-sEcReT-app-${id}-0123456789`;
  fx.stack.sim.addApp({ clientId: `app-${id}`, clientSecret, redirectUris: [REDIRECT] });
  await fx.stack.store().addConnection(
    {
      connectionId: id,
      clientId: `app-${id}`,
      baseUrl: fx.stack.sim.url,
      redirectUri: REDIRECT,
      secretId,
      mode: "code",
    },
    fx.clock.now(),
  );
  return { clientSecret };
}

function login(fx: Fixture) {
  return {
    username: fx.conn.username,
    password: `pw-sEcReT-${fx.conn.username}-0123456789`,
    totpSecret: "JBSWY3DPEHPK3PXP",
  };
}

describe("exact-broker connection add, in AWS", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("writes the split layout under the broker's prefixes and records the client secret's name", async () => {
    fx = await startFixture({ seed: false });
    const file = secretFile({ clientSecret: "cs-sEcReT-new-0123456789", ...login(fx) });
    const add = (...extra: string[]) =>
      cli(
        fx,
        { aws: true },
        ...["connection", "add", "--id", "fresh", "--client-id", "app-fresh", "--base-url", fx.stack.sim.url],
        ...["--redirect-uri", REDIRECT, "--secret-file", file, ...extra],
      );

    expect(await add("--secret-id", "exact-token-broker/connections/fresh")).toMatchObject({
      code: ExitCode.BadInput,
      err: expect.stringContaining("--secret-id must start with exact-token-broker/client-secrets/"),
    });
    const added = await add();

    expect(added.code).toBe(ExitCode.Done);
    expect(added.out).toContain("created secret exact-token-broker/logins/fresh (login credentials)");
    expect(added.out).toContain("created secret exact-token-broker/client-secrets/fresh (client secret)");
    expect(await secretValue("exact-token-broker/client-secrets/fresh")).toEqual({
      clientSecret: "cs-sEcReT-new-0123456789",
    });
    expect(await secretValue("exact-token-broker/logins/fresh")).toEqual(login(fx));
    expect((await fx.stack.store().get("fresh"))?.secretId).toBe("exact-token-broker/client-secrets/fresh");
  });

  it("lets connections of one app share its client secret, each with its own user's login", async () => {
    fx = await startFixture({ seed: false });
    const shared = "exact-token-broker/client-secrets/app-shared";
    const add = (id: string, username: string) =>
      cli(
        fx,
        { aws: true },
        ...["connection", "add", "--id", id, "--client-id", "app-shared", "--base-url", fx.stack.sim.url],
        ...["--redirect-uri", REDIRECT, "--secret-id", shared, "--secret-file"],
        secretFile({ clientSecret: "cs-sEcReT-shared-0123456789", ...login(fx), username }),
      );

    expect((await add("first", "first@example.com")).code).toBe(ExitCode.Done);
    expect((await add("second", "second@example.com")).code).toBe(ExitCode.Done);

    expect(await secretValue(shared)).toEqual({ clientSecret: "cs-sEcReT-shared-0123456789" });
    expect(await secretValue("exact-token-broker/logins/first")).toMatchObject({
      username: "first@example.com",
    });
    expect(await secretValue("exact-token-broker/logins/second")).toMatchObject({
      username: "second@example.com",
    });
  });

  it("refuses a login without all three fields, writing nothing", async () => {
    fx = await startFixture({ seed: false });
    const { totpSecret: _missing, ...partial } = login(fx);
    const file = secretFile({ clientSecret: "cs-sEcReT-partial-0123456789", ...partial });

    const added = await cli(
      fx,
      { aws: true },
      ...[
        "connection",
        "add",
        "--id",
        "partial",
        "--client-id",
        "app-partial",
        "--base-url",
        fx.stack.sim.url,
      ],
      ...["--redirect-uri", REDIRECT, "--secret-file", file],
    );

    expect(added).toMatchObject({
      code: ExitCode.BadInput,
      err: expect.stringContaining("missing: totpSecret"),
    });
    expect(await secretValue("exact-token-broker/client-secrets/partial")).toBeUndefined();
    expect(await secretValue("exact-token-broker/logins/partial")).toBeUndefined();
  });
});

describe("exact-broker connection set-secret, in AWS: out of a combined secret", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  /** A seeded connection whose secret is a combined one, as every connection's was before the split. */
  async function combinedConnection(id: string): Promise<{ combined: string; clientSecret: string }> {
    const combined = `exact-token-broker/connections/${id}`;
    const { clientSecret } = await addConnection(fx, id, combined);
    await sm.send(
      new CreateSecretCommand({
        Name: combined,
        SecretString: JSON.stringify({ clientSecret, ...login(fx) }),
      }),
    );
    const code = fx.stack.sim.authorize({
      clientId: `app-${id}`,
      username: fx.conn.username,
      redirectUri: REDIRECT,
    });
    await awsBroker(fx).onboarding.seed(id, code);
    return { combined, clientSecret };
  }

  it("moves it, then the connection refreshes and heals without it", async () => {
    fx = await startFixture({ seed: false });
    const { combined, clientSecret } = await combinedConnection("mig");

    const moved = await cli(fx, { aws: true }, "connection", "set-secret", "--id", "mig");

    expect(moved.code).toBe(ExitCode.Done);
    expect(moved.out.split("\n")).toEqual([
      "created secret exact-token-broker/logins/mig (login credentials)",
      "created secret exact-token-broker/client-secrets/mig (client secret)",
      `connection "mig" now reads its client secret from exact-token-broker/client-secrets/mig (was ${combined})`,
      `next: in 15 minutes (functions keep a secret they read that long), delete the combined secret: aws secretsmanager delete-secret --secret-id ${combined}`,
    ]);
    expect(await secretValue("exact-token-broker/client-secrets/mig")).toEqual({ clientSecret });
    expect(await secretValue("exact-token-broker/logins/mig")).toEqual(login(fx));
    expect((await fx.stack.store().get("mig"))?.secretId).toBe("exact-token-broker/client-secrets/mig");

    // The operator deletes the combined secret; nothing reads it any more.
    await sm.send(new DeleteSecretCommand({ SecretId: combined, ForceDeleteWithoutRecovery: true }));
    fx.clock.advance(WINDOW);
    const vended = await awsBroker(fx).vend.vend("mig", 30);
    expect(vended).toMatchObject({ generation: 2 });
    expect(await awsBroker(fx).heal.heal("mig", { operator: true })).toMatchObject({ kind: "healed" });
  });

  it("changes nothing when run again", async () => {
    fx = await startFixture({ seed: false });
    await combinedConnection("again");
    await cli(fx, { aws: true }, "connection", "set-secret", "--id", "again");

    const again = await cli(fx, { aws: true }, "connection", "set-secret", "--id", "again");

    expect(again.code).toBe(ExitCode.Done);
    expect(again.out.split("\n")).toEqual([
      "updated secret exact-token-broker/logins/again (login credentials)",
      "updated secret exact-token-broker/client-secrets/again (client secret)",
    ]);
    expect((await fx.stack.store().get("again"))?.secretId).toBe("exact-token-broker/client-secrets/again");
  });

  it("keeps the login credentials when given a new client secret alone", async () => {
    fx = await startFixture({ seed: false });
    await combinedConnection("rotated");
    const file = secretFile({ clientSecret: "cs-sEcReT-rotated-0123456789" });

    const rotated = await cli(
      fx,
      { aws: true },
      "connection",
      "set-secret",
      "--id",
      "rotated",
      "--secret-file",
      file,
    );

    expect(rotated.code).toBe(ExitCode.Done);
    expect(await secretValue("exact-token-broker/client-secrets/rotated")).toEqual({
      clientSecret: "cs-sEcReT-rotated-0123456789",
    });
    expect(await secretValue("exact-token-broker/logins/rotated")).toEqual(login(fx));
  });

  it("answers 3 for a connection that does not exist", async () => {
    fx = await startFixture({ seed: false });

    expect(await cli(fx, { aws: true }, "connection", "set-secret", "--id", "nobody")).toMatchObject({
      code: ExitCode.NotFound,
      err: expect.stringContaining('connection "nobody" does not exist'),
    });
  });
});

describe("exact-broker connection set-secret, locally", () => {
  let fx: Fixture;
  afterEach(() => fx?.close());

  it("splits a combined entry of the secrets file in place, and the connection heals from it", async () => {
    fx = await startFixture();
    const { secretId, connectionId } = fx.conn;

    const split = await cli(fx, { aws: false }, "connection", "set-secret", "--id", connectionId);

    expect(split.code).toBe(ExitCode.Done);
    const file = JSON.parse(readFileSync(fx.stack.env.LOCAL_SECRETS_FILE ?? "", "utf8"));
    expect(Object.keys(file[secretId])).toEqual(["clientSecret"]);
    expect(file[`exact-token-broker/logins/${connectionId}`]).toEqual(login(fx));
    expect((await fx.record()).secretId).toBe(secretId);
    expect(await fx.broker().heal.heal(connectionId, { operator: true })).toMatchObject({ kind: "healed" });
  });
});
