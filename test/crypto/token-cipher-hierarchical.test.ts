import { createServer } from "node:net";
import { buildClient, CommitmentPolicy, KmsHierarchicalKeyRingNode } from "@aws-crypto/client-node";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { CreateKeyCommand, KMS } from "@aws-sdk/client-kms";
import type { InitializeMiddleware, MetadataBearer } from "@smithy/types";
import type { CloudFormationCustomResourceEvent } from "aws-lambda";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  BRANCH_KEY_CACHE_TTL_SECONDS,
  BRANCH_KEY_STORE_LOGICAL_NAME,
  BranchKeySetup,
  BranchKeyStore,
  branchKeyTableInput,
} from "../../lib/crypto/branch-key-store.js";
import {
  createTokenCipher,
  PREPARED_SEALER_TTL_MS,
  type TokenBinding,
  type TokenCipher,
} from "../../lib/crypto/token-cipher.js";
import { ConfigurationError, EncryptionUnavailable, TokenDecryptError } from "../../lib/errors.js";
import { createBranchKeySetupHandler } from "../../lib/handlers/branch-key-setup-handler.js";
import { type MotoServer, startMotoServer } from "../support/moto-server.js";
import { describeWithMoto } from "../support/tool-gate.js";

// KMS and the key store's table both served by moto_server over real HTTP. The table is in moto,
// not dynalite: creating and rotating a branch key is a TransactWriteItems, which dynalite lacks.
// moto 5 checks the encryption context of GenerateDataKeyWithoutPlaintext, ReEncrypt and Decrypt
// like KMS does. Gated (tool-gate.ts): skipped with one line when moto_server is missing.

const REGION = "eu-west-1";
const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };
const BRANCH_KEY_ID = "tokens-test";
const ACCESS_TOKEN = "hkTestAccessToken!0123456789abcdefghijklmnop";
const REFRESH_TOKEN = "hkTestRefreshToken!0123456789abcdefghijklmnop";
const CHAIN = { connectionId: "conn-1", incarnation: "inc-A" } as const;
const REFRESH: TokenBinding = { ...CHAIN, kind: "refresh" };
const ACCESS: TokenBinding = { ...CHAIN, kind: "access" };

interface AwsCall {
  readonly service: "kms" | "dynamodb";
  readonly command: string;
  readonly input: Record<string, unknown>;
}

let moto: MotoServer;
let motoPort: number;
/** A port where nothing listens: every call to it fails to connect, as in an outage. */
let downPort: number;
let keyArn: string;
let tableName: string;
let kmsUp = true;
let keyStoreUp = true;
const calls: AwsCall[] = [];

/**
 * A client configuration whose endpoint is moto or the closed port as `isUp()` says at each
 * request (one attempt: an outage fails fast).
 */
function switchingConfig(isUp: () => boolean) {
  return {
    region: REGION,
    credentials: CREDENTIALS,
    maxAttempts: 1,
    endpoint: async () => ({
      protocol: "http:",
      hostname: "127.0.0.1",
      port: isUp() ? motoPort : downPort,
      path: "/",
    }),
  };
}

/** Records every command a client sends, in {@link calls}. */
function recorder<I extends object, O extends MetadataBearer>(
  service: AwsCall["service"],
): InitializeMiddleware<I, O> {
  return (next, context) => async (args) => {
    calls.push({
      service,
      command: String(context.commandName),
      input: args.input as Record<string, unknown>,
    });
    return next(args);
  };
}

function recordingKms(): KMS {
  const client = new KMS(switchingConfig(() => kmsUp));
  client.middlewareStack.add(recorder("kms"), { step: "initialize", name: "recordAwsCalls" });
  return client;
}

function recordingDynamo(): DynamoDBClient {
  const client = new DynamoDBClient(switchingConfig(() => keyStoreUp));
  client.middlewareStack.add(recorder("dynamodb"), { step: "initialize", name: "recordAwsCalls" });
  return client;
}

let kms: KMS;
let dynamo: DynamoDBClient;

function hierarchicalCipher(branchKeyId = BRANCH_KEY_ID): TokenCipher {
  return createTokenCipher(
    { KMS_KEY_ARN: keyArn, BRANCH_KEY_STORE_TABLE_NAME: tableName, BRANCH_KEY_ID: branchKeyId },
    { kmsClientProvider: () => kms, branchKeyKmsClient: kms, branchKeyDynamoClient: dynamo },
  );
}

function kmsOnlyCipher(): TokenCipher {
  return createTokenCipher({ KMS_KEY_ARN: keyArn }, { kmsClientProvider: () => kms });
}

function store(): BranchKeyStore {
  return new BranchKeyStore({ tableName, kmsKeyArn: keyArn, dynamo, kms });
}

function commands(service?: AwsCall["service"]): string[] {
  return calls
    .filter((call) => service === undefined || call.service === service)
    .map((call) => call.command);
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (error: unknown) => error,
  );
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

describe("createTokenCipher with the branch key store: configuration", () => {
  const arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-000000000000";

  it.each<[string, Record<string, string>, RegExp]>([
    ["the table without a branch key ID", { KMS_KEY_ARN: arn, BRANCH_KEY_STORE_TABLE_NAME: "bks" }, /both/],
    ["a branch key ID without the table", { KMS_KEY_ARN: arn, BRANCH_KEY_ID: "tokens" }, /both/],
    [
      "the key store without KMS_KEY_ARN",
      {
        LOCAL_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString("base64"),
        BRANCH_KEY_STORE_TABLE_NAME: "bks",
        BRANCH_KEY_ID: "t",
      },
      /needs KMS_KEY_ARN/,
    ],
    [
      "a KMS alias instead of a key ARN",
      {
        KMS_KEY_ARN: "arn:aws:kms:eu-west-1:123456789012:alias/tokens",
        BRANCH_KEY_STORE_TABLE_NAME: "bks",
        BRANCH_KEY_ID: "tokens",
      },
      /needs a key ARN/,
    ],
  ])("refuses %s at start", (_label, env, message) => {
    expect(() => createTokenCipher(env)).toThrow(ConfigurationError);
    expect(() => createTokenCipher(env)).toThrow(message);
  });
});

describeWithMoto("createTokenCipher with the branch key store (hierarchical keyring)", () => {
  beforeAll(async () => {
    moto = await startMotoServer();
    motoPort = Number(new URL(moto.endpoint).port);
    downPort = await closedPort();
    kms = recordingKms();
    dynamo = recordingDynamo();
    const created = await kms.send(new CreateKeyCommand({ Description: "branch key store test" }));
    if (created.KeyMetadata?.Arn === undefined) throw new Error("moto returned no key ARN");
    keyArn = created.KeyMetadata.Arn;
    tableName = "branch-keys-test";
    await dynamo.send(new CreateTableCommand(branchKeyTableInput(tableName)));
    await store().ensure(BRANCH_KEY_ID);
  });

  afterAll(async () => {
    kms?.destroy();
    dynamo?.destroy();
    await moto?.close();
  });

  beforeEach(() => {
    kmsUp = true;
    keyStoreUp = true;
    calls.length = 0;
  });

  describe("BranchKeyStore.ensure", () => {
    it("creates a branch key once, wrapped by KMS under the store's context, and then finds it", async () => {
      const first = await store().ensure("ensure-test");
      const createCalls = [...calls];
      calls.length = 0;
      const second = await store().ensure("ensure-test");

      expect(first).toBe(BranchKeySetup.Created);
      expect(createCalls.map((call) => call.command)).toEqual([
        "GetItemCommand",
        "GenerateDataKeyWithoutPlaintextCommand",
        "ReEncryptCommand",
        "GenerateDataKeyWithoutPlaintextCommand",
        "TransactWriteItemsCommand",
      ]);
      expect(createCalls[1]?.input.EncryptionContext).toMatchObject({
        "branch-key-id": "ensure-test",
        tablename: BRANCH_KEY_STORE_LOGICAL_NAME,
        "kms-arn": keyArn,
        "aws-crypto-ec:app": "exact-token-broker",
      });
      expect(second).toBe(BranchKeySetup.Existing);
      expect(commands()).toEqual(["GetItemCommand"]);
    });

    it("lets one of two concurrent deploys create the key, and the other find it", async () => {
      const outcomes = await Promise.all([store().ensure("race-test"), store().ensure("race-test")]);

      expect(outcomes.sort()).toEqual([BranchKeySetup.Created, BranchKeySetup.Existing]);
      expect(
        await hierarchicalCipher("race-test").decrypt(
          await hierarchicalCipher("race-test").encrypt(REFRESH_TOKEN, REFRESH),
          REFRESH,
        ),
      ).toBe(REFRESH_TOKEN);
    });
  });

  describe("the branch-key-setup custom resource", () => {
    const event = (requestType: "Create" | "Update" | "Delete", branchKeyId: string) =>
      ({
        RequestType: requestType,
        PhysicalResourceId: branchKeyId,
        ResourceProperties: {
          ServiceToken: "arn:test",
          TableName: tableName,
          KmsKeyArn: keyArn,
          BranchKeyId: branchKeyId,
        },
      }) as unknown as CloudFormationCustomResourceEvent;

    it("creates the branch key on Create, finds it on Update, and keeps it on Delete", async () => {
      const onEvent = createBranchKeySetupHandler({ dynamo, kms });

      const created = await onEvent(event("Create", "setup-test"));
      const updated = await onEvent(event("Update", "setup-test"));
      calls.length = 0;
      const deleted = await onEvent(event("Delete", "setup-test"));

      expect(created).toEqual({
        PhysicalResourceId: "setup-test",
        Data: { BranchKeyId: "setup-test", Setup: "created" },
      });
      expect(updated.Data.Setup).toBe("existing");
      expect(deleted.PhysicalResourceId).toBe("setup-test");
      expect(commands()).toEqual([]);
      expect(await store().exists("setup-test")).toBe(true);
    });

    it("refuses an event without the branch key ID", async () => {
      const onEvent = createBranchKeySetupHandler({ dynamo, kms });

      await expect(onEvent(event("Create", ""))).rejects.toThrow(/BranchKeyId must be a non-empty string/);
      expect(commands()).toEqual([]);
    });
  });

  describe("encrypt and decrypt", () => {
    it("seals under the branch key, bound to exactly our encryption context, and opens it again", async () => {
      const cipher = hierarchicalCipher();

      const ciphertext = await cipher.encrypt(REFRESH_TOKEN, REFRESH);
      const plaintext = await cipher.decrypt(ciphertext, REFRESH);

      expect(plaintext).toBe(REFRESH_TOKEN);
      // One load for encrypting (the active version), one for decrypting (the version the message
      // names): the keyring caches them as separate entries.
      expect(commands()).toEqual(["GetItemCommand", "DecryptCommand", "GetItemCommand", "DecryptCommand"]);
      const { messageHeader } = await buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT).decrypt(
        new KmsHierarchicalKeyRingNode({
          branchKeyId: BRANCH_KEY_ID,
          keyStore: store().keyStore,
          cacheLimitTtl: 60,
        }),
        Buffer.from(ciphertext, "base64"),
      );
      expect(messageHeader.encryptionContext).toEqual({
        app: "exact-token-broker",
        connectionId: "conn-1",
        kind: "refresh",
        incarnation: "inc-A",
      });
      expect(messageHeader.encryptedDataKeys.map((key) => [key.providerId, key.providerInfo])).toEqual([
        ["aws-kms-hierarchy", BRANCH_KEY_ID],
      ]);
    });

    it.each<[string, TokenBinding]>([
      ["another connection", { ...REFRESH, connectionId: "conn-2" }],
      ["another kind", ACCESS],
      ["another incarnation", { ...REFRESH, incarnation: "inc-B" }],
      ["the legacy binding (no incarnation)", { connectionId: "conn-1", kind: "refresh" }],
    ])("refuses a ciphertext copied to %s, although the branch key opens it", async (_label, other) => {
      const cipher = hierarchicalCipher();
      const ciphertext = await cipher.encrypt(REFRESH_TOKEN, REFRESH);

      const error = await failure(cipher.decrypt(ciphertext, other));

      expect(error).toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).toMatch(/encryption context differs/);
      expect((error as Error).message).not.toContain(REFRESH_TOKEN);
    });

    it("does not open a ciphertext whose context was rewritten to another connection's", async () => {
      const cipher = hierarchicalCipher();
      const message = Buffer.from(await cipher.encrypt(REFRESH_TOKEN, REFRESH), "base64");
      const at = message.indexOf("conn-1");
      message.write("conn-2", at);

      const error = await failure(
        cipher.decrypt(message.toString("base64"), { ...REFRESH, connectionId: "conn-2" }),
      );

      expect(at).toBeGreaterThan(0);
      expect(error).toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).toMatch(/did not decrypt/);
      expect((error as Error).message).not.toContain(REFRESH_TOKEN);
    });

    it("encrypts and decrypts from the cached branch key with KMS and the key store down", async () => {
      const cipher = hierarchicalCipher();
      await cipher.decrypt(await cipher.encrypt(ACCESS_TOKEN, ACCESS), ACCESS);
      calls.length = 0;
      kmsUp = false;
      keyStoreUp = false;

      const ciphertext = await cipher.encrypt(REFRESH_TOKEN, REFRESH);

      expect(await cipher.decrypt(ciphertext, REFRESH)).toBe(REFRESH_TOKEN);
      expect(commands()).toEqual([]);
    });
  });

  describe("migration from the KMS keyring", () => {
    it("opens tokens sealed by the KMS keyring with one KMS Decrypt and no key store read", async () => {
      const sealedBefore = await kmsOnlyCipher().encrypt(REFRESH_TOKEN, REFRESH);
      calls.length = 0;

      const plaintext = await hierarchicalCipher().decrypt(sealedBefore, REFRESH);

      expect(plaintext).toBe(REFRESH_TOKEN);
      expect(commands()).toEqual(["DecryptCommand"]);
      expect(calls[0]?.input.KeyId).toBe(keyArn);
    });

    it("still refuses a KMS-keyring token copied to another connection", async () => {
      const sealedBefore = await kmsOnlyCipher().encrypt(REFRESH_TOKEN, REFRESH);

      const error = await failure(
        hierarchicalCipher().decrypt(sealedBefore, { ...REFRESH, connectionId: "conn-2" }),
      );

      expect((error as Error).message).toMatch(/encryption context differs/);
    });

    it("reports KMS down, not a dead token, for a token sealed before the branch key, however warm the branch key is", async () => {
      const sealedBefore = await kmsOnlyCipher().encrypt(REFRESH_TOKEN, REFRESH);
      const cipher = hierarchicalCipher();
      // A warm container: the branch key is loaded, so a seal-and-open probe needs no KMS at all.
      await cipher.decrypt(await cipher.encrypt(ACCESS_TOKEN, ACCESS), ACCESS);
      kmsUp = false;

      const error = await failure(cipher.decrypt(sealedBefore, REFRESH));
      const probe = await cipher.decrypt(await cipher.encrypt("probe", ACCESS), ACCESS);

      // A TokenDecryptError with a working probe would mark the chain BROKEN (decrypt_failed).
      expect(error).toBeInstanceOf(EncryptionUnavailable);
      expect(error).not.toBeInstanceOf(TokenDecryptError);
      expect(probe).toBe("probe");
      kmsUp = true;
      expect(await cipher.decrypt(sealedBefore, REFRESH)).toBe(REFRESH_TOKEN);
    });

    it("refuses, as a configuration error and not a dead token, to open a branch-key token without the key store settings", async () => {
      const sealed = await hierarchicalCipher().encrypt(REFRESH_TOKEN, REFRESH);
      calls.length = 0;

      const error = await kmsOnlyCipher()
        .decrypt(sealed, REFRESH)
        .then(
          () => undefined,
          (e: unknown) => e,
        );

      // A TokenDecryptError would mark the chain BROKEN (decrypt_failed); this one stops the process.
      expect(error).toBeInstanceOf(ConfigurationError);
      expect(error).not.toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).toMatch(/BRANCH_KEY_STORE_TABLE_NAME and BRANCH_KEY_ID/);
      expect(calls).toEqual([]);
    });

    it("opens a KMS-keyring token whose connection ID spells the branch-key provider's ID", async () => {
      // The check reads the header's data keys, not the message's bytes: the context is in the header too.
      const binding: TokenBinding = { ...REFRESH, connectionId: "aws-kms-hierarchy" };
      const sealed = await kmsOnlyCipher().encrypt(REFRESH_TOKEN, binding);

      expect(await kmsOnlyCipher().decrypt(sealed, binding)).toBe(REFRESH_TOKEN);
    });

    it("keeps opening tokens sealed under a branch key version after a rotation", async () => {
      await store().ensure("rotate-test");
      const before = hierarchicalCipher("rotate-test");
      const sealedBefore = await before.encrypt(REFRESH_TOKEN, REFRESH);

      await store().rotate("rotate-test");
      const after = hierarchicalCipher("rotate-test");
      const sealedAfter = await after.encrypt(ACCESS_TOKEN, ACCESS);

      expect(await after.decrypt(sealedBefore, REFRESH)).toBe(REFRESH_TOKEN);
      expect(await before.decrypt(sealedAfter, ACCESS)).toBe(ACCESS_TOKEN);
      expect(versionOf(sealedAfter)).not.toEqual(versionOf(sealedBefore));
    });
  });

  describe("prepare", () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it("loads the branch key once, its only network call", async () => {
      const cipher = hierarchicalCipher();

      await cipher.prepare(CHAIN);

      expect(commands()).toEqual(["GetItemCommand", "DecryptCommand"]);
      expect(calls[0]?.input).toMatchObject({
        TableName: tableName,
        Key: { "branch-key-id": { S: BRANCH_KEY_ID }, type: { S: "branch:ACTIVE" } },
      });
    });

    it("lets seal() work for both kinds with KMS and the key store down, making no call", async () => {
      const cipher = hierarchicalCipher();
      const sealer = await cipher.prepare(CHAIN);
      calls.length = 0;
      kmsUp = false;
      keyStoreUp = false;

      const sealedAccess = await sealer.seal(ACCESS_TOKEN, "access");
      const sealedRefresh = await sealer.seal(REFRESH_TOKEN, "refresh");
      const callsWhileSealing = commands();
      const coldError = await failure(hierarchicalCipher().encrypt(REFRESH_TOKEN, REFRESH));

      expect(callsWhileSealing).toEqual([]);
      expect(String((coldError as Error).message)).toMatch(/ECONNREFUSED|connect/);
      kmsUp = true;
      keyStoreUp = true;
      expect(await cipher.decrypt(sealedAccess, ACCESS)).toBe(ACCESS_TOKEN);
      expect(await cipher.decrypt(sealedRefresh, REFRESH)).toBe(REFRESH_TOKEN);
    });

    it("seals without network after the branch key's own cache entry expired", async () => {
      vi.useFakeTimers({ toFake: ["Date"] });
      const cipher = hierarchicalCipher();
      await cipher.encrypt(ACCESS_TOKEN, ACCESS);
      const loadedAtMs = Date.now();
      vi.setSystemTime(loadedAtMs + BRANCH_KEY_CACHE_TTL_SECONDS * 1000 - 1_000);
      const sealer = await cipher.prepare(CHAIN);
      calls.length = 0;
      kmsUp = false;
      keyStoreUp = false;

      vi.setSystemTime(loadedAtMs + BRANCH_KEY_CACHE_TTL_SECONDS * 1000 + 1_000);
      const sealed = await sealer.seal(REFRESH_TOKEN, "refresh");

      expect(commands()).toEqual([]);
      expect(PREPARED_SEALER_TTL_MS).toBeGreaterThan(2_000);
      kmsUp = true;
      keyStoreUp = true;
      expect(await cipher.decrypt(sealed, REFRESH)).toBe(REFRESH_TOKEN);
    });

    it("rejects when the key store is down and no branch key is cached, so no token call starts", async () => {
      keyStoreUp = false;

      const error = await failure(hierarchicalCipher().prepare(CHAIN));

      expect((error as Error).message).toMatch(/ECONNREFUSED|connect/);
      expect(commands()).toEqual(["GetItemCommand"]);
    });
  });

  describe("requests per token", () => {
    it("seals 1,000 tokens of 100 connections and opens them again with 2 KMS requests and 2 reads", async () => {
      const cipher = hierarchicalCipher();
      const sealed: { ciphertext: string; binding: TokenBinding; plaintext: string }[] = [];

      for (let connection = 0; connection < 100; connection++) {
        const chain = { connectionId: `conn-${connection}`, incarnation: `inc-${connection}` };
        for (let generation = 0; generation < 5; generation++) {
          const sealer = await cipher.prepare(chain);
          for (const kind of ["access", "refresh"] as const) {
            const plaintext = `${kind}-${connection}-${generation}-token`;
            sealed.push({
              ciphertext: await sealer.seal(plaintext, kind),
              binding: { ...chain, kind },
              plaintext,
            });
          }
        }
      }
      // One after another, as a container serves its invocations (concurrent misses would each
      // load: the keyring does not join them).
      const opened: string[] = [];
      for (const { ciphertext, binding } of sealed) opened.push(await cipher.decrypt(ciphertext, binding));

      expect(sealed).toHaveLength(1_000);
      expect(opened).toEqual(sealed.map(({ plaintext }) => plaintext));
      expect(commands("kms")).toEqual(["DecryptCommand", "DecryptCommand"]);
      expect(commands("dynamodb")).toEqual(["GetItemCommand", "GetItemCommand"]);
      // ~2,500 messages of local crypto: seconds here, more on a loaded machine.
    }, 120_000);

    it("compares with the KMS keyring: one GenerateDataKey per token kind per prepare, one Decrypt per token", async () => {
      const cipher = kmsOnlyCipher();

      const sealer = await cipher.prepare(CHAIN);
      const sealed = await sealer.seal(REFRESH_TOKEN, "refresh");
      await cipher.decrypt(sealed, REFRESH);

      expect(commands("kms")).toEqual(["GenerateDataKeyCommand", "GenerateDataKeyCommand", "DecryptCommand"]);
    });
  });
});

/** The branch key version a message's encrypted data key names (16 bytes after salt and IV). */
function versionOf(ciphertext: string): string {
  const { messageHeader } = parseHeaderOnly(ciphertext);
  return Buffer.from(messageHeader.slice(16 + 12, 16 + 12 + 16)).toString("hex");
}

/** The first encrypted data key's bytes: enough to compare versions without decrypting. */
function parseHeaderOnly(ciphertext: string): { messageHeader: Buffer } {
  const message = Buffer.from(ciphertext, "base64");
  const providerId = Buffer.from("aws-kms-hierarchy");
  const at = message.indexOf(providerId);
  // providerId, uint16 length + providerInfo, uint16 length + encrypted data key
  let offset = at + providerId.length;
  const infoLength = message.readUInt16BE(offset);
  offset += 2 + infoLength;
  const keyLength = message.readUInt16BE(offset);
  offset += 2;
  return { messageHeader: message.subarray(offset, offset + keyLength) };
}
