import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretVersionIdsCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecretUnavailable } from "../../lib/errors.js";
import { createFileSecretSource } from "../../lib/secrets/file-secret-source.js";
import type { SecretSource } from "../../lib/secrets/secret-source.js";
import {
  createFileSecretWriter,
  createSecretsManagerWriter,
  SecretPart,
  type SecretWriter,
} from "../../lib/secrets/secret-writer.js";
import { createSecretsManagerSource } from "../../lib/secrets/secrets-manager-source.js";
import { type MotoServer, startMotoServer } from "../support/moto-server.js";

// Secrets Manager is moto_server's, over real HTTP: CreateSecret, its ResourceExists refusal and
// PutSecretValue are Secrets Manager's own.

const REGION = "eu-west-1";
const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };
const LOGIN = {
  username: "operator@example.com",
  password: "pw-sEcReT-writer-0123456789",
  totpSecret: "JBSWY3DPEHPK3PXP",
};

let moto: MotoServer;
let sm: SecretsManagerClient;
let dir: string;
let unique = 0;

beforeAll(async () => {
  moto = await startMotoServer();
  sm = new SecretsManagerClient({ region: REGION, endpoint: moto.endpoint, credentials: CREDENTIALS });
  dir = await mkdtemp(join(tmpdir(), "secret-writer-"));
}, 60_000);

afterAll(async () => {
  sm?.destroy();
  await moto?.close();
  await rm(dir, { recursive: true, force: true });
});

/** What a store holds under an ID, as stored (parsed JSON), or undefined. */
type Peek = (secretId: string) => Promise<unknown>;

const stores: Array<[string, () => { writer: SecretWriter; source: SecretSource; peek: Peek }]> = [
  [
    "a local secrets file",
    () => {
      const file = join(dir, `secrets-${++unique}.json`);
      return {
        writer: createFileSecretWriter(file),
        source: createFileSecretSource(file),
        peek: async (secretId) => {
          const text = await readFile(file, "utf8").catch(() => "{}");
          return JSON.parse(text)[secretId];
        },
      };
    },
  ],
  [
    "Secrets Manager (moto_server)",
    () => ({
      writer: createSecretsManagerWriter(sm),
      source: createSecretsManagerSource({ client: sm, maxAgeSeconds: 0 }),
      peek: async (secretId) => {
        try {
          const out = await sm.send(new GetSecretValueCommand({ SecretId: secretId }));
          return JSON.parse(out.SecretString ?? "null");
        } catch (error) {
          if (error instanceof ResourceNotFoundException) return undefined;
          throw error;
        }
      },
    }),
  ],
];

describe.each(stores)("SecretWriter over %s", (_label, open) => {
  /** A connection of its own: its ID, client secret and login secret. */
  const names = () => {
    const connectionId = `writer-${++unique}`;
    const client = `exact-token-broker/client-secrets/${connectionId}`;
    return {
      owner: { connectionId, secretId: client },
      client,
      login: `exact-token-broker/logins/${connectionId}`,
    };
  };

  it("writes the login credentials to their own secret first, then the client secret alone", async () => {
    const { writer, source, peek } = open();
    const id = names();

    const writes = await writer.put(id.owner, { clientSecret: "cs-sEcReT-writer-0123456789", ...LOGIN });

    expect(writes).toEqual([
      { secretId: id.login, holds: SecretPart.LoginCredentials, created: true },
      { secretId: id.client, holds: SecretPart.ClientSecret, created: true },
    ]);
    expect(await peek(id.client)).toEqual({ clientSecret: "cs-sEcReT-writer-0123456789" });
    expect(await peek(id.login)).toEqual(LOGIN);
    expect(await source.clientSecret(id.client)).toBe("cs-sEcReT-writer-0123456789");
    expect(await source.loginCredentials(id.owner)).toEqual(LOGIN);
  });

  it("replaces both when written again", async () => {
    const { writer, source } = open();
    const id = names();
    await writer.put(id.owner, { clientSecret: "cs-sEcReT-first-0123456789", ...LOGIN });
    const fixed = { ...LOGIN, password: "pw-sEcReT-fixed-0123456789" };

    const writes = await writer.put(id.owner, { clientSecret: "cs-sEcReT-second-0123456789", ...fixed });

    expect(writes.map((w) => w.created)).toEqual([false, false]);
    expect(await source.clientSecret(id.client)).toBe("cs-sEcReT-second-0123456789");
    expect(await source.loginCredentials(id.owner)).toEqual(fixed);
  });

  it("keeps the login secret when given a client secret alone (a rotated client secret)", async () => {
    const { writer, source } = open();
    const id = names();
    await writer.put(id.owner, { clientSecret: "cs-sEcReT-before-0123456789", ...LOGIN });

    const writes = await writer.put(id.owner, { clientSecret: "cs-sEcReT-rotated-0123456789" });

    expect(writes).toEqual([{ secretId: id.client, holds: SecretPart.ClientSecret, created: false }]);
    expect(await source.clientSecret(id.client)).toBe("cs-sEcReT-rotated-0123456789");
    expect(await source.loginCredentials(id.owner)).toEqual(LOGIN);
  });

  it("refuses an empty client secret before writing anything, naming the field", async () => {
    const { writer, peek } = open();
    const id = names();

    const error = await writer.put(id.owner, { clientSecret: "", ...LOGIN }).catch((e: Error) => e);

    expect(error).toBeInstanceOf(SecretUnavailable);
    expect((error as Error).message).toContain("clientSecret");
    expect(await peek(id.login)).toBeUndefined();
    expect(await peek(id.client)).toBeUndefined();
  });
});

describe("SecretWriter over Secrets Manager (moto_server)", () => {
  it("describes each secret by what it holds and who reads it", async () => {
    const name = `described-${++unique}`;
    await createSecretsManagerWriter(sm).put(
      { connectionId: name, secretId: `exact-token-broker/client-secrets/${name}` },
      {
        clientSecret: "cs-sEcReT-described-0123456789",
        ...LOGIN,
      },
    );

    const client = await sm.send(
      new DescribeSecretCommand({ SecretId: `exact-token-broker/client-secrets/${name}` }),
    );
    const login = await sm.send(new DescribeSecretCommand({ SecretId: `exact-token-broker/logins/${name}` }));
    expect(client.Description).toMatch(/client secret \(read by every function\)/);
    expect(login.Description).toMatch(/password and TOTP secret \(read by fallback-login only\)/);
  });

  it("adds a version when the secret exists, so AWSCURRENT moves to the new value", async () => {
    const id = `exact-token-broker/client-secrets/versions-${++unique}`;
    const writer = createSecretsManagerWriter(sm);
    await writer.put({ connectionId: "versions", secretId: id }, { clientSecret: "cs-sEcReT-v1-0123456789" });
    await writer.put({ connectionId: "versions", secretId: id }, { clientSecret: "cs-sEcReT-v2-0123456789" });

    const versions = await sm.send(new ListSecretVersionIdsCommand({ SecretId: id }));
    const stages = (versions.Versions ?? []).flatMap((v) => v.VersionStages ?? []).sort();
    expect(stages).toEqual(["AWSCURRENT", "AWSPREVIOUS"]);
  });
});

describe("SecretWriter over a local secrets file", () => {
  it("creates the file with owner-only permissions", async () => {
    const file = join(dir, `fresh-${++unique}.json`);

    await createFileSecretWriter(file).put(
      { connectionId: "fresh", secretId: "exact/fresh" },
      { clientSecret: "cs-sEcReT-fresh-0123456789" },
    );

    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});
