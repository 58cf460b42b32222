import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConfigurationError, SecretUnavailable } from "../../lib/errors.js";
import { REDACTED, redactString } from "../../lib/log/redactor.js";
import { type ConnectionSecret, hasLoginCredentials } from "../../lib/secrets/connection-secret.js";
import { createSecretSource } from "../../lib/secrets/secret-source.js";

const FULL: ConnectionSecret = {
  clientSecret: "client-secret-value-1",
  username: "operator@example.com",
  password: "hunter2-but-longer",
  totpSecret: "JBSWY3DPEHPK3PXP",
};

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (error: Error) => error,
  );
}

describe("createSecretSource", () => {
  describe("with LOCAL_SECRETS_FILE", () => {
    let dir: string;
    let file: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "secrets-"));
      file = join(dir, "secrets.json");
    });

    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    async function writeSecrets(content: unknown): Promise<void> {
      await writeFile(file, typeof content === "string" ? content : JSON.stringify(content));
    }

    it("returns the entry for the secret ID", async () => {
      await writeSecrets({ "conn/one": FULL, "conn/two": { clientSecret: "other-client-secret" } });
      const source = createSecretSource({ LOCAL_SECRETS_FILE: file });

      expect(await source.get("conn/one")).toEqual(FULL);
      expect(await source.get("conn/two")).toEqual({ clientSecret: "other-client-secret" });
    });

    it("reads the file on every call, so an edit takes effect at once", async () => {
      const source = createSecretSource({ LOCAL_SECRETS_FILE: file });
      await writeSecrets({ conn: { clientSecret: "before-the-edit" } });
      await source.get("conn");
      await writeSecrets({ conn: { clientSecret: "after-the-edit" } });

      expect((await source.get("conn")).clientSecret).toBe("after-the-edit");
    });

    it.each(["missing", "__proto__", "constructor"])(
      "throws SecretUnavailable for an unknown ID (%s)",
      async (id) => {
        await writeSecrets({ conn: FULL });
        const source = createSecretSource({ LOCAL_SECRETS_FILE: file });

        const error = await failure(source.get(id));

        expect(error).toBeInstanceOf(SecretUnavailable);
        expect(error.message).toContain(id);
      },
    );

    it("names the wrong field, never its value", async () => {
      await writeSecrets({ conn: { clientSecret: "fine-client-secret", password: 12345678901 } });
      const source = createSecretSource({ LOCAL_SECRETS_FILE: file });

      const error = await failure(source.get("conn"));

      expect(error).toBeInstanceOf(SecretUnavailable);
      expect(error.message).toContain("password");
      expect(error.message).not.toContain("12345678901");
      expect(error.message).not.toContain("fine-client-secret");
    });

    it.each<[string, unknown]>([
      ["not JSON", '{"conn": {"clientSecret": "leaky-secret-in-broken-json"'],
      ["an array", [{ clientSecret: "leaky-secret-in-array" }]],
    ])("throws ConfigurationError when the file is %s, without quoting it", async (_label, content) => {
      await writeSecrets(content);
      const source = createSecretSource({ LOCAL_SECRETS_FILE: file });

      const error = await failure(source.get("conn"));

      expect(error).toBeInstanceOf(ConfigurationError);
      expect(error.message).not.toContain("leaky");
      expect(JSON.stringify(error.cause ?? null)).not.toContain("leaky");
    });

    it("throws ConfigurationError when the file does not exist", async () => {
      const source = createSecretSource({ LOCAL_SECRETS_FILE: join(dir, "nope.json") });

      const error = await failure(source.get("conn"));

      expect(error).toBeInstanceOf(ConfigurationError);
      expect(error.message).toContain("nope.json");
    });
  });

  describe("with Secrets Manager", () => {
    const sm = mockClient(SecretsManagerClient);
    const client = new SecretsManagerClient({
      region: "eu-west-1",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });

    beforeEach(() => {
      sm.reset();
    });

    it("fetches, validates and caches the secret: a second get makes no second call", async () => {
      sm.on(GetSecretValueCommand, { SecretId: "conn/one" }).resolves({ SecretString: JSON.stringify(FULL) });
      const source = createSecretSource({}, { secretsManagerClient: client });

      const first = await source.get("conn/one");
      const second = await source.get("conn/one");

      expect(first).toEqual(FULL);
      expect(second).toEqual(FULL);
      expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
      expect(sm.commandCalls(GetSecretValueCommand)[0]?.args[0].input).toEqual({ SecretId: "conn/one" });
    });

    it("fetches again with forceFetch", async () => {
      sm.on(GetSecretValueCommand)
        .resolvesOnce({ SecretString: JSON.stringify({ clientSecret: "old-client-secret" }) })
        .resolves({ SecretString: JSON.stringify({ clientSecret: "new-client-secret" }) });
      const source = createSecretSource({}, { secretsManagerClient: client });

      await source.get("conn/rotating");
      const fresh = await source.get("conn/rotating", { forceFetch: true });

      expect(fresh.clientSecret).toBe("new-client-secret");
      expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
    });

    it("fetches again once maxAge has passed", async () => {
      sm.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify(FULL) });
      const source = createSecretSource({}, { secretsManagerClient: client, maxAgeSeconds: 0 });

      await source.get("conn/uncached");
      await source.get("conn/uncached");

      expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
    });

    it("reads a binary secret", async () => {
      sm.on(GetSecretValueCommand).resolves({ SecretBinary: new TextEncoder().encode(JSON.stringify(FULL)) });
      const source = createSecretSource({}, { secretsManagerClient: client });

      expect(await source.get("conn/binary")).toEqual(FULL);
    });

    it("throws SecretUnavailable naming the secret ID when it does not exist", async () => {
      sm.on(GetSecretValueCommand).rejects(
        new ResourceNotFoundException({
          message: "Secrets Manager can't find the specified secret.",
          $metadata: {},
        }),
      );
      const source = createSecretSource({}, { secretsManagerClient: client });

      const error = await failure(source.get("conn/missing"));

      expect(error).toBeInstanceOf(SecretUnavailable);
      expect(error.message).toContain("conn/missing");
      expect(error.message).toContain("not found");
    });

    it("throws SecretUnavailable when Secrets Manager fails otherwise", async () => {
      sm.on(GetSecretValueCommand).rejects(
        Object.assign(new Error("denied"), { name: "AccessDeniedException" }),
      );
      const source = createSecretSource({}, { secretsManagerClient: client });

      const error = await failure(source.get("conn/denied"));

      expect(error).toBeInstanceOf(SecretUnavailable);
      expect(error.message).toContain("could not be read");
    });

    it.each<[string, unknown, string]>([
      ["clientSecret is missing", { password: "some-password-1" }, "clientSecret"],
      ["clientSecret is empty", { clientSecret: "" }, "clientSecret"],
      [
        "username is not a string",
        { clientSecret: "ok-client-secret", username: ["secret-user-list"] },
        "username",
      ],
      [
        "totpSecret is not a string",
        { clientSecret: "ok-client-secret", totpSecret: 123456789 },
        "totpSecret",
      ],
      ["the value is not an object", "just-a-secret-string", "JSON object"],
    ])("throws SecretUnavailable when %s, naming the field but no value", async (_label, value, field) => {
      sm.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify(value) });
      const source = createSecretSource({}, { secretsManagerClient: client });

      const error = await failure(source.get("conn/bad-shape"));

      expect(error).toBeInstanceOf(SecretUnavailable);
      expect(error.message).toContain("conn/bad-shape");
      expect(error.message).toContain(field);
      for (const secretish of [
        "some-password-1",
        "ok-client-secret",
        "secret-user-list",
        "123456789",
        "just-a",
      ]) {
        expect(error.message).not.toContain(secretish);
      }
    });

    it("throws SecretUnavailable for a value that is not JSON, without quoting it", async () => {
      sm.on(GetSecretValueCommand).resolves({ SecretString: "{clientSecret: leaky-unquoted-secret" });
      const source = createSecretSource({}, { secretsManagerClient: client });

      const error = await failure(source.get("conn/not-json"));

      expect(error).toBeInstanceOf(SecretUnavailable);
      expect(error.message).not.toContain("leaky");
      expect(error.cause).toBeUndefined();
    });

    it("registers the secret values with the log redactor", async () => {
      sm.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify(FULL) });
      const source = createSecretSource({}, { secretsManagerClient: client });

      await source.get("conn/redacted");

      expect(redactString(`secret ${FULL.clientSecret} pw ${FULL.password} totp ${FULL.totpSecret}`)).toBe(
        `secret ${REDACTED} pw ${REDACTED} totp ${REDACTED}`,
      );
    });
  });
});

describe("hasLoginCredentials", () => {
  it.each<[string, ConnectionSecret, boolean]>([
    ["all three present", FULL, true],
    ["only the client secret", { clientSecret: "x" }, false],
    ["no TOTP secret", { clientSecret: "x", username: "u", password: "p" }, false],
    ["an empty password", { ...FULL, password: "" }, false],
  ])("%s → %s", (_label, secret, expected) => {
    expect(hasLoginCredentials(secret)).toBe(expected);
  });
});
