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
import { ConfigurationError } from "../../lib/errors.js";
import { REDACTED, redactString } from "../../lib/log/redactor.js";
import { createLinkKeySource } from "../../lib/onboarding/link-key-source.js";

const KEY = "link-key-sEcReT-0123456789abcdefghijklmnop";

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: Error) => error,
  );
}

describe("createLinkKeySource", () => {
  it("refuses to start without LINK_SIGNING_SECRET_ID", () => {
    expect(() => createLinkKeySource({ LOCAL_SECRETS_FILE: "/tmp/x.json" })).toThrow(ConfigurationError);
    expect(() => createLinkKeySource({ LINK_SIGNING_SECRET_ID: "  " })).toThrow(/LINK_SIGNING_SECRET_ID/);
  });

  describe("with LOCAL_SECRETS_FILE", () => {
    let dir: string;
    let file: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "link-key-"));
      file = join(dir, "secrets.json");
      await writeFile(
        file,
        JSON.stringify({
          "exact-broker/link-key": KEY,
          short: "too-short-sEcReT",
          object: { clientSecret: "not-a-link-key-sEcReT-0123456789abcdef" },
        }),
      );
    });
    afterAll(() => rm(dir, { recursive: true, force: true }));

    it("reads the key as a plain string and registers it with the redactor", async () => {
      const source = createLinkKeySource({
        LINK_SIGNING_SECRET_ID: "exact-broker/link-key",
        LOCAL_SECRETS_FILE: file,
      });

      const key = await source.get();

      expect(key.toString("utf8")).toBe(KEY);
      expect(redactString(`key=${KEY}`)).toBe(`key=${REDACTED}`);
    });

    it.each([
      ["missing", "absent", /was not found/],
      ["shorter than 32 characters", "short", /at least 32 characters/],
      ["not a string", "object", /must be a string/],
    ])("refuses a key that is %s, naming the secret ID and no value", async (_what, secretId, message) => {
      const source = createLinkKeySource({ LINK_SIGNING_SECRET_ID: secretId, LOCAL_SECRETS_FILE: file });

      const error = await failure(source.get());

      expect(error).toBeInstanceOf(ConfigurationError);
      expect(error.message).toMatch(message);
      expect(error.message).toContain(secretId);
      expect(error.message).not.toMatch(/sEcReT/);
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

    it("reads the SecretString as the key and caches it: a second get makes no second call", async () => {
      sm.on(GetSecretValueCommand, { SecretId: "link/cached" }).resolves({ SecretString: KEY });
      const source = createLinkKeySource(
        { LINK_SIGNING_SECRET_ID: "link/cached" },
        { secretsManagerClient: client },
      );

      const first = await source.get();
      const second = await source.get();

      expect(first.toString("utf8")).toBe(KEY);
      expect(second.equals(first)).toBe(true);
      expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    });

    it("fetches again once maxAge has passed (a rotated key is picked up)", async () => {
      sm.on(GetSecretValueCommand)
        .resolvesOnce({ SecretString: KEY })
        .resolves({ SecretString: `${KEY}-rotated` });
      const source = createLinkKeySource(
        { LINK_SIGNING_SECRET_ID: "link/rotating" },
        { secretsManagerClient: client, maxAgeSeconds: 0 },
      );

      await source.get();
      const rotated = await source.get();

      expect(rotated.toString("utf8")).toBe(`${KEY}-rotated`);
    });

    it("reads a binary secret", async () => {
      sm.on(GetSecretValueCommand).resolves({ SecretBinary: new TextEncoder().encode(KEY) });
      const source = createLinkKeySource(
        { LINK_SIGNING_SECRET_ID: "link/binary" },
        { secretsManagerClient: client },
      );

      expect((await source.get()).toString("utf8")).toBe(KEY);
    });

    it("uses Powertools' shared getSecret provider when no client is given", async () => {
      const region = process.env.AWS_REGION;
      process.env.AWS_REGION = "eu-west-1";
      try {
        sm.on(GetSecretValueCommand, { SecretId: "link/shared" }).resolves({ SecretString: KEY });
        const source = createLinkKeySource({ LINK_SIGNING_SECRET_ID: "link/shared" });

        expect((await source.get()).toString("utf8")).toBe(KEY);
        expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
      } finally {
        if (region === undefined) delete process.env.AWS_REGION;
        else process.env.AWS_REGION = region;
      }
    });

    it("turns a missing secret into a ConfigurationError naming the secret ID", async () => {
      sm.on(GetSecretValueCommand).rejects(
        new ResourceNotFoundException({
          message: "Secrets Manager can't find the specified secret.",
          $metadata: {},
        }),
      );
      const source = createLinkKeySource(
        { LINK_SIGNING_SECRET_ID: "link/missing" },
        { secretsManagerClient: client },
      );

      const error = await failure(source.get());

      expect(error).toBeInstanceOf(ConfigurationError);
      expect(error.message).toContain("link/missing");
    });

    it("refuses a key shorter than 32 characters", async () => {
      sm.on(GetSecretValueCommand).resolves({ SecretString: "short-sEcReT" });
      const source = createLinkKeySource(
        { LINK_SIGNING_SECRET_ID: "link/short" },
        { secretsManagerClient: client },
      );

      const error = await failure(source.get());

      expect(error.message).toMatch(/at least 32 characters/);
      expect(error.message).not.toMatch(/sEcReT/);
    });
  });
});
