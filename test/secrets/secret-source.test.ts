import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigurationError, SecretUnavailable } from "../../lib/errors.js";
import { REDACTED, redactString } from "../../lib/log/redactor.js";
import type { LoginCredentials } from "../../lib/secrets/connection-secret.js";
import { createSecretSource, type SecretSource } from "../../lib/secrets/secret-source.js";
import { type MotoServer, startMotoServer } from "../support/moto-server.js";

// Secrets Manager is moto_server's, over real HTTP (test/support/moto-server.ts): the SDK, the
// Powertools provider and its cache, and Secrets Manager's own errors are all real.

const CLIENT_SECRET = "cs-sEcReT-source-0123456789";
const LOGIN: LoginCredentials = {
  username: "operator@example.com",
  password: "pw-sEcReT-source-0123456789",
  totpSecret: "JBSWY3DPEHPK3PXP",
};
const REGION = "eu-west-1";
const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (error: Error) => error,
  );
}

/** One place secrets are stored, and a SecretSource over it. */
interface Store {
  /** Stores a secret's value: JSON-encoded, or the text as is. */
  put(secretId: string, value: unknown): Promise<void>;
  source(): SecretSource;
}

let moto: MotoServer;
let sm: SecretsManagerClient;
let dir: string;
let file: string;
let fileContent: Record<string, unknown> = {};
let unique = 0;

beforeAll(async () => {
  moto = await startMotoServer();
  sm = new SecretsManagerClient({ region: REGION, endpoint: moto.endpoint, credentials: CREDENTIALS });
  dir = await mkdtemp(join(tmpdir(), "secrets-"));
  file = join(dir, "secrets.json");
}, 60_000);

afterAll(async () => {
  sm?.destroy();
  await moto?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Secrets Manager (moto): CreateSecret, or PutSecretValue when it exists. */
async function putInSecretsManager(secretId: string, value: unknown): Promise<void> {
  const SecretString = typeof value === "string" ? value : JSON.stringify(value);
  try {
    await sm.send(new CreateSecretCommand({ Name: secretId, SecretString }));
  } catch {
    await sm.send(new PutSecretValueCommand({ SecretId: secretId, SecretString }));
  }
}

const stores: Array<[string, () => Store]> = [
  [
    "a local secrets file",
    () => ({
      async put(secretId, value) {
        fileContent = { ...fileContent, [secretId]: value };
        await writeFile(file, JSON.stringify(fileContent));
      },
      source: () => createSecretSource({ LOCAL_SECRETS_FILE: file }),
    }),
  ],
  [
    "Secrets Manager (moto_server)",
    () => ({
      put: putInSecretsManager,
      source: () => createSecretSource({}, { secretsManagerClient: sm }),
    }),
  ],
];

describe.each(stores)("SecretSource over %s", (_label, makeStore) => {
  /** A connection name no other test uses (moto and the file keep every secret of the file). */
  const fresh = (): string => `conn-${++unique}`;

  describe("the split layout", () => {
    it("reads the client secret from the connection's secret and the login from its login secret", async () => {
      const store = makeStore();
      const name = fresh();
      await store.put(`exact-token-broker/client-secrets/${name}`, { clientSecret: CLIENT_SECRET });
      await store.put(`exact-token-broker/logins/${name}`, LOGIN);
      const source = store.source();

      expect(await source.clientSecret(`exact-token-broker/client-secrets/${name}`)).toBe(CLIENT_SECRET);
      expect(
        await source.loginCredentials({
          connectionId: name,
          secretId: `exact-token-broker/client-secrets/${name}`,
        }),
      ).toEqual(LOGIN);
    });

    it("has no login credentials when there is no login secret", async () => {
      const store = makeStore();
      const id = `exact-token-broker/client-secrets/${fresh()}`;
      await store.put(id, { clientSecret: CLIENT_SECRET });

      expect(
        await store.source().loginCredentials({ connectionId: `alone-${unique}`, secretId: id }),
      ).toBeUndefined();
    });

    it("refuses a login secret without all three fields, naming the field, never a value", async () => {
      const store = makeStore();
      const name = fresh();
      await store.put(`exact-token-broker/client-secrets/${name}`, { clientSecret: CLIENT_SECRET });
      await store.put(`exact-token-broker/logins/${name}`, { ...LOGIN, totpSecret: "" });

      const error = await failure(
        store
          .source()
          .loginCredentials({ connectionId: name, secretId: `exact-token-broker/client-secrets/${name}` }),
      );

      expect(error).toBeInstanceOf(SecretUnavailable);
      expect(error.message).toContain(`exact-token-broker/logins/${name}`);
      expect(error.message).toContain("totpSecret must be a non-empty string");
      expect(error.message).not.toMatch(/sEcReT|operator@/);
    });
  });

  describe("the combined layout (before the split)", () => {
    it("gives the client secret, and the login credentials when there is no login secret", async () => {
      const store = makeStore();
      const id = `exact-token-broker/connections/${fresh()}`;
      await store.put(id, { clientSecret: CLIENT_SECRET, ...LOGIN });
      const source = store.source();

      expect(await source.clientSecret(id)).toBe(CLIENT_SECRET);
      expect(await source.loginCredentials({ connectionId: `alone-${unique}`, secretId: id })).toEqual(LOGIN);
    });

    it("prefers a login secret over the combined secret's login fields", async () => {
      const store = makeStore();
      const name = fresh();
      const fixed = { ...LOGIN, password: "pw-sEcReT-fixed-0123456789" };
      await store.put(`exact-token-broker/connections/${name}`, { clientSecret: CLIENT_SECRET, ...LOGIN });
      await store.put(`exact-token-broker/logins/${name}`, fixed);

      expect(
        await store
          .source()
          .loginCredentials({ connectionId: name, secretId: `exact-token-broker/connections/${name}` }),
      ).toEqual(fixed);
    });

    it.each<[string, Record<string, string>]>([
      ["no TOTP secret", { username: LOGIN.username, password: LOGIN.password }],
      ["an empty password", { ...LOGIN, password: "" }],
    ])("has no login credentials when the combined secret has %s", async (_label, login) => {
      const store = makeStore();
      const id = `exact-token-broker/connections/${fresh()}`;
      await store.put(id, { clientSecret: CLIENT_SECRET, ...login });

      expect(
        await store.source().loginCredentials({ connectionId: `alone-${unique}`, secretId: id }),
      ).toBeUndefined();
    });
  });

  it("throws SecretUnavailable naming a secret that does not exist, for either part", async () => {
    const source = makeStore().source();
    const id = `exact-token-broker/client-secrets/${fresh()}`;

    for (const error of [
      await failure(source.clientSecret(id)),
      await failure(source.loginCredentials({ connectionId: `alone-${unique}`, secretId: id })),
    ]) {
      expect(error).toBeInstanceOf(SecretUnavailable);
      expect(error.message).toContain(id);
      expect(error.message).toContain("not found");
    }
  });

  it.each<[string, unknown, string]>([
    ["clientSecret is missing", { password: "some-sEcReT-password-1" }, "clientSecret"],
    ["clientSecret is empty", { clientSecret: "" }, "clientSecret"],
    [
      "username is not a string",
      { clientSecret: "ok-sEcReT-client-secret", username: ["secret-user"] },
      "username",
    ],
    ["the value is not an object", ["just-a-sEcReT-in-a-list"], "JSON object"],
  ])("names the wrong field when %s, never a value", async (_label, value, field) => {
    const store = makeStore();
    const id = `exact-token-broker/client-secrets/${fresh()}`;
    await store.put(id, value);

    const error = await failure(store.source().clientSecret(id));

    expect(error).toBeInstanceOf(SecretUnavailable);
    expect(error.message).toContain(id);
    expect(error.message).toContain(field);
    expect(error.message).not.toMatch(/sEcReT|secret-user/);
  });

  it("registers every value it reads with the log redactor", async () => {
    const store = makeStore();
    const name = fresh();
    const login = {
      ...LOGIN,
      password: `pw-sEcReT-redacted-${name}`,
      totpSecret: `GEZDGNBVGY3TQOJQ${unique}`,
    };
    const clientSecret = `cs-sEcReT-redacted-${name}`;
    await store.put(`exact-token-broker/client-secrets/${name}`, { clientSecret });
    await store.put(`exact-token-broker/logins/${name}`, login);
    const source = store.source();

    await source.clientSecret(`exact-token-broker/client-secrets/${name}`);
    await source.loginCredentials({
      connectionId: name,
      secretId: `exact-token-broker/client-secrets/${name}`,
    });

    expect(redactString(`${clientSecret} ${login.password} ${login.totpSecret}`)).toBe(
      `${REDACTED} ${REDACTED} ${REDACTED}`,
    );
  });
});

describe("SecretSource over a local secrets file", () => {
  it("reads the file on every call, so an edit takes effect at once", async () => {
    const local = join(dir, "edited.json");
    const source = createSecretSource({ LOCAL_SECRETS_FILE: local });
    await writeFile(local, JSON.stringify({ conn: { clientSecret: "before-the-sEcReT-edit" } }));
    await source.clientSecret("conn");
    await writeFile(local, JSON.stringify({ conn: { clientSecret: "after-the-sEcReT-edit" } }));

    expect(await source.clientSecret("conn")).toBe("after-the-sEcReT-edit");
  });

  it.each(["__proto__", "constructor"])(
    "does not take an object's own properties for a secret (%s)",
    async (id) => {
      await writeFile(join(dir, "plain.json"), JSON.stringify({ conn: { clientSecret: CLIENT_SECRET } }));
      const source = createSecretSource({ LOCAL_SECRETS_FILE: join(dir, "plain.json") });

      expect(await failure(source.clientSecret(id))).toBeInstanceOf(SecretUnavailable);
    },
  );

  it.each<[string, string]>([
    ["not JSON", '{"conn": {"clientSecret": "leaky-sEcReT-in-broken-json"'],
    ["an array", JSON.stringify([{ clientSecret: "leaky-sEcReT-in-array" }])],
  ])("throws ConfigurationError when the file is %s, without quoting it", async (_label, content) => {
    const broken = join(dir, "broken.json");
    await writeFile(broken, content);
    const source = createSecretSource({ LOCAL_SECRETS_FILE: broken });

    const error = await failure(source.clientSecret("conn"));

    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).not.toContain("leaky");
    expect(JSON.stringify(error.cause ?? null)).not.toContain("leaky");
  });

  it("throws ConfigurationError naming a file that does not exist", async () => {
    const source = createSecretSource({ LOCAL_SECRETS_FILE: join(dir, "nope.json") });

    const error = await failure(source.loginCredentials({ connectionId: "conn", secretId: "conn" }));

    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toContain("nope.json");
  });
});

describe("SecretSource over Secrets Manager (moto_server)", () => {
  const name = (label: string) => `exact-token-broker/client-secrets/cache-${label}-${++unique}`;

  it("keeps a value it read until maxAge: a changed secret shows only once the cache is bypassed", async () => {
    const id = name("kept");
    await putInSecretsManager(id, { clientSecret: "cs-sEcReT-old-0123456789" });
    const source = createSecretSource({}, { secretsManagerClient: sm });
    await source.clientSecret(id);
    await putInSecretsManager(id, { clientSecret: "cs-sEcReT-new-0123456789" });

    expect(await source.clientSecret(id)).toBe("cs-sEcReT-old-0123456789");
    expect(await source.clientSecret(id, { forceFetch: true })).toBe("cs-sEcReT-new-0123456789");
  });

  it("reads a changed secret at once with a maxAge of 0", async () => {
    const id = name("uncached");
    await putInSecretsManager(id, { clientSecret: "cs-sEcReT-old-0123456789" });
    const source = createSecretSource({}, { secretsManagerClient: sm, maxAgeSeconds: 0 });
    await source.clientSecret(id);
    await putInSecretsManager(id, { clientSecret: "cs-sEcReT-new-0123456789" });

    expect(await source.clientSecret(id)).toBe("cs-sEcReT-new-0123456789");
  });

  it("reads a binary secret", async () => {
    const id = name("binary");
    await sm.send(
      new CreateSecretCommand({
        Name: id,
        SecretBinary: new TextEncoder().encode(JSON.stringify({ clientSecret: CLIENT_SECRET })),
      }),
    );

    expect(await createSecretSource({}, { secretsManagerClient: sm }).clientSecret(id)).toBe(CLIENT_SECRET);
  });

  it("throws SecretUnavailable for a value that is not JSON, without quoting it", async () => {
    const id = name("not-json");
    await putInSecretsManager(id, "{clientSecret: leaky-unquoted-sEcReT");

    const error = await failure(createSecretSource({}, { secretsManagerClient: sm }).clientSecret(id));

    expect(error).toBeInstanceOf(SecretUnavailable);
    expect(error.message).not.toContain("leaky");
    expect(error.cause).toBeUndefined();
  });

  it("throws SecretUnavailable, not 'not found', when Secrets Manager cannot be reached", async () => {
    const down = new SecretsManagerClient({
      region: REGION,
      // Port 9 (discard) on loopback: nothing listens, the connection is refused.
      endpoint: "http://127.0.0.1:9",
      credentials: CREDENTIALS,
      maxAttempts: 1,
    });

    const error = await failure(
      createSecretSource({}, { secretsManagerClient: down }).clientSecret("conn/down"),
    );

    expect(error).toBeInstanceOf(SecretUnavailable);
    expect(error.message).toContain("could not be read");
    down.destroy();
  });
});

describe("SecretSource over Secrets Manager (mocked)", () => {
  // The one case moto cannot serve: a GetSecretValue answer with neither SecretString nor
  // SecretBinary (moto always answers one of them, or ResourceNotFound for a secret without a value).
  it("throws SecretUnavailable for an answer that holds no value", async () => {
    const mock = mockClient(SecretsManagerClient);
    try {
      mock.on(GetSecretValueCommand).resolves({ Name: "conn/empty" });
      const client = new SecretsManagerClient({ region: REGION, credentials: CREDENTIALS });

      const error = await failure(
        createSecretSource({}, { secretsManagerClient: client }).clientSecret("conn/empty"),
      );

      expect(error).toBeInstanceOf(SecretUnavailable);
      expect(error.message).toContain("has no value");
    } finally {
      // The mock patches every SecretsManagerClient: the other tests talk to moto.
      mock.restore();
    }
  });
});
