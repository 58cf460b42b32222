import { createServer } from "node:net";
import { buildClient, CommitmentPolicy, KmsKeyringNode } from "@aws-crypto/client-node";
import { CreateKeyCommand, KMS } from "@aws-sdk/client-kms";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  createTokenCipher,
  PREPARED_SEALER_TTL_MS,
  type TokenBinding,
  type TokenCipher,
} from "../../lib/crypto/token-cipher.js";
import { EncryptionUnavailable, TokenDecryptError } from "../../lib/errors.js";
import { type MotoServer, startMotoServer } from "../support/moto-server.js";
import { describeWithMoto } from "../support/tool-gate.js";

// KMS served by moto_server over real HTTP: it generates and unwraps data keys and refuses an
// unwrap under another encryption context, like KMS does. Gated (tool-gate.ts): skipped with one
// line at the end of the run when moto_server is missing, required with CI=true.

const REGION = "eu-west-1";
const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };
const ACCESS_TOKEN = "kmsTestAccessToken!0123456789abcdefghijklmnop";
const REFRESH_TOKEN = "kmsTestRefreshToken!0123456789abcdefghijklmnop";
const CHAIN = { connectionId: "conn-1", incarnation: "inc-A" } as const;
const REFRESH: TokenBinding = { ...CHAIN, kind: "refresh" };
const ACCESS: TokenBinding = { ...CHAIN, kind: "access" };

interface KmsCall {
  readonly command: string;
  readonly input: Record<string, unknown>;
  readonly output?: Record<string, unknown>;
}

let moto: MotoServer;
let keyArn: string;
/** An endpoint where nothing listens: every call to it fails to connect, as in a KMS outage. */
let downEndpoint: string;
let kmsUp = true;
const calls: KmsCall[] = [];
const regions: string[] = [];

/** A KMS client (the aggregated one: the keyring calls its methods) that records every command it sends (and, when it answers, the answer). */
function recordingClient(endpoint: string): KMS {
  // One attempt: the outage must fail fast, and moto never throttles.
  const client = new KMS({ region: REGION, endpoint, credentials: CREDENTIALS, maxAttempts: 1 });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const call = { command: String(context.commandName), input: args.input as Record<string, unknown> };
      calls.push(call);
      const result = await next(args);
      calls[calls.indexOf(call)] = { ...call, output: { ...result.output } };
      return result;
    },
    { step: "initialize", name: "recordKmsCalls" },
  );
  return client;
}

let upClient: KMS;
let downClient: KMS;
const kmsClientProvider = (region: string): KMS => {
  regions.push(region);
  return kmsUp ? upClient : downClient;
};

function kmsCipher(arn = keyArn): TokenCipher {
  return createTokenCipher({ KMS_KEY_ARN: arn }, { kmsClientProvider });
}

async function createKey(): Promise<string> {
  const { KeyMetadata } = await upClient.send(new CreateKeyCommand({ Description: "token-cipher test" }));
  if (KeyMetadata?.Arn === undefined) throw new Error("moto returned no key ARN");
  return KeyMetadata.Arn;
}

async function closedPortEndpoint(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return `http://127.0.0.1:${address.port}`;
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (error: unknown) => error,
  );
}

function commands(): string[] {
  return calls.map((call) => call.command);
}

describeWithMoto("createTokenCipher with a KMS key", () => {
  beforeAll(async () => {
    moto = await startMotoServer();
    downEndpoint = await closedPortEndpoint();
    upClient = recordingClient(moto.endpoint);
    downClient = recordingClient(downEndpoint);
    keyArn = await createKey();
  });

  afterAll(async () => {
    upClient?.destroy();
    downClient?.destroy();
    await moto?.close();
  });

  beforeEach(() => {
    kmsUp = true;
    calls.length = 0;
    regions.length = 0;
  });

  describe("encrypt and decrypt", () => {
    it("asks KMS for one data key on encrypt and to unwrap it on decrypt, under exactly our encryption context", async () => {
      const cipher = kmsCipher();
      const expectedContext = {
        app: "exact-token-broker",
        connectionId: "conn-1",
        kind: "refresh",
        incarnation: "inc-A",
      };

      const ciphertext = await cipher.encrypt(REFRESH_TOKEN, REFRESH);
      const plaintext = await cipher.decrypt(ciphertext, REFRESH);

      expect(plaintext).toBe(REFRESH_TOKEN);
      expect(commands()).toEqual(["GenerateDataKeyCommand", "DecryptCommand"]);
      expect(regions).toEqual([REGION, REGION]);
      const [generated, unwrapped] = calls;
      expect(generated?.input).toEqual({
        KeyId: keyArn,
        NumberOfBytes: 32,
        EncryptionContext: expectedContext,
      });
      expect(unwrapped?.input).toMatchObject({ KeyId: keyArn, EncryptionContext: expectedContext });
      expect(Buffer.from(unwrapped?.input.CiphertextBlob as Uint8Array)).toEqual(
        Buffer.from(generated?.output?.CiphertextBlob as Uint8Array),
      );
      const { messageHeader } = await buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT).decrypt(
        new KmsKeyringNode({ generatorKeyId: keyArn, clientProvider: kmsClientProvider }),
        Buffer.from(ciphertext, "base64"),
      );
      expect(messageHeader.encryptionContext).toEqual(expectedContext);
    });

    it("binds a token without incarnation to exactly the legacy context", async () => {
      const cipher = kmsCipher();
      const legacy: TokenBinding = { connectionId: "conn-1", kind: "access" };

      const ciphertext = await cipher.encrypt(ACCESS_TOKEN, legacy);

      expect(calls[0]?.input.EncryptionContext).toEqual({
        app: "exact-token-broker",
        connectionId: "conn-1",
        kind: "access",
      });
      expect(await cipher.decrypt(ciphertext, legacy)).toBe(ACCESS_TOKEN);
    });

    it.each<[string, TokenBinding]>([
      ["another incarnation", { ...REFRESH, incarnation: "inc-B" }],
      ["the legacy binding (no incarnation)", { connectionId: "conn-1", kind: "refresh" }],
      ["another connection", { ...REFRESH, connectionId: "conn-2" }],
    ])("refuses a ciphertext copied to %s, although KMS unwraps its data key", async (_label, other) => {
      const cipher = kmsCipher();
      const ciphertext = await cipher.encrypt(REFRESH_TOKEN, REFRESH);

      const error = await failure(cipher.decrypt(ciphertext, other));

      expect(error).toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).toMatch(/encryption context differs/);
      expect((error as Error).message).not.toContain(REFRESH_TOKEN);
      expect(commands()).toEqual(["GenerateDataKeyCommand", "DecryptCommand"]);
    });

    it("turns a KMS refusal (a wrapped data key KMS rejects) into TokenDecryptError", async () => {
      const cipher = kmsCipher();
      const message = Buffer.from(await cipher.encrypt(REFRESH_TOKEN, REFRESH), "base64");
      const wrappedKey = Buffer.from(calls[0]?.output?.CiphertextBlob as Uint8Array);
      const at = message.indexOf(wrappedKey);
      // The last byte of the wrapped key: KMS must refuse it before the SDK can check anything.
      message.writeUInt8(message.readUInt8(at + wrappedKey.length - 1) ^ 0x01, at + wrappedKey.length - 1);
      calls.length = 0;

      const error = await failure(cipher.decrypt(message.toString("base64"), REFRESH));

      expect(at).toBeGreaterThan(0);
      expect(error).toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).not.toContain(REFRESH_TOKEN);
      expect(commands()).toEqual(["DecryptCommand"]);
      expect(calls[0]?.output).toBeUndefined();
      expect(String((error as Error).cause)).toMatch(/InvalidCiphertextException/);
    });

    it("reports a KMS outage as EncryptionUnavailable, never as a token that does not decrypt", async () => {
      const cipher = kmsCipher();
      const ciphertext = await cipher.encrypt(REFRESH_TOKEN, REFRESH);
      kmsUp = false;

      const error = await failure(cipher.decrypt(ciphertext, REFRESH));

      expect(error).toBeInstanceOf(EncryptionUnavailable);
      expect(error).not.toBeInstanceOf(TokenDecryptError);
      expect((error as Error).message).not.toContain(REFRESH_TOKEN);
      expect(String((error as Error).cause)).toMatch(/ECONNREFUSED/);
    });
  });

  describe("prepare", () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it("fetches one data key per token kind, under each kind's exact context", async () => {
      const cipher = kmsCipher();

      await cipher.prepare(CHAIN);

      expect(commands()).toEqual(["GenerateDataKeyCommand", "GenerateDataKeyCommand"]);
      const contexts = calls.map((call) => call.input.EncryptionContext);
      expect(contexts).toEqual(
        expect.arrayContaining([
          { app: "exact-token-broker", connectionId: "conn-1", kind: "access", incarnation: "inc-A" },
          { app: "exact-token-broker", connectionId: "conn-1", kind: "refresh", incarnation: "inc-A" },
        ]),
      );
    });

    it("lets seal() work for both kinds with KMS down, making no KMS call, while encrypt() fails", async () => {
      const cipher = kmsCipher();
      const sealer = await cipher.prepare(CHAIN);
      calls.length = 0;
      kmsUp = false;

      const sealedAccess = await sealer.seal(ACCESS_TOKEN, "access");
      const sealedRefresh = await sealer.seal(REFRESH_TOKEN, "refresh");
      const callsWhileSealing = commands();
      const encryptError = await failure(cipher.encrypt(REFRESH_TOKEN, REFRESH));

      expect(callsWhileSealing).toEqual([]);
      expect((encryptError as Error).message).toMatch(/ECONNREFUSED/);
      expect(commands()).toEqual(["GenerateDataKeyCommand"]);
      kmsUp = true;
      expect(await cipher.decrypt(sealedAccess, ACCESS)).toBe(ACCESS_TOKEN);
      expect(await cipher.decrypt(sealedRefresh, REFRESH)).toBe(REFRESH_TOKEN);
    });

    it("rejects when KMS is down, so no token call starts without key material", async () => {
      const cipher = kmsCipher();
      kmsUp = false;

      const error = await failure(cipher.prepare(CHAIN));

      expect((error as Error).message).toMatch(/ECONNREFUSED/);
      expect(commands()).toContain("GenerateDataKeyCommand");
    });

    it("gives each prepare() its own data keys", async () => {
      const cipher = kmsCipher();

      await cipher.prepare(CHAIN);
      await cipher.prepare(CHAIN);

      expect(commands()).toEqual(Array(4).fill("GenerateDataKeyCommand"));
      const wrappedKeys = calls.map((call) =>
        Buffer.from(call.output?.CiphertextBlob as Uint8Array).toString("hex"),
      );
      expect(new Set(wrappedKeys).size).toBe(4);
    });

    it("seals without KMS until PREPARED_SEALER_TTL_MS has passed, then fetches a fresh data key", async () => {
      vi.useFakeTimers({ toFake: ["Date"] });
      const cipher = kmsCipher();
      const sealer = await cipher.prepare(CHAIN);
      const preparedAtMs = Date.now();
      calls.length = 0;

      vi.setSystemTime(preparedAtMs + PREPARED_SEALER_TTL_MS - 1_000);
      await sealer.seal(REFRESH_TOKEN, "refresh");
      const callsBeforeExpiry = commands();
      vi.setSystemTime(preparedAtMs + PREPARED_SEALER_TTL_MS + 1_000);
      const late = await sealer.seal(REFRESH_TOKEN, "refresh");

      expect(callsBeforeExpiry).toEqual([]);
      expect(commands()).toEqual(["GenerateDataKeyCommand"]);
      expect(await cipher.decrypt(late, REFRESH)).toBe(REFRESH_TOKEN);
    });
  });
});
