import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AuthorizationSettings, VendAuthorization } from "../../lib/auth/authorization-settings.js";
import type { CallerIdentity } from "../../lib/auth/caller-identity.js";
import { GrantStore } from "../../lib/auth/grant-store.js";
import { grantPrincipalOf } from "../../lib/auth/principal.js";
import { StsIdentityVerifier } from "../../lib/auth/sts-identity-verifier.js";
import { GRANT_CACHE_MS, VendAuthorizer } from "../../lib/auth/vend-authorizer.js";
import { createBroker } from "../../lib/broker.js";
import { IdentitySigner } from "../../lib/client/identity-signer.js";
import { AccessDenied, ConfigurationError, StsUnavailable } from "../../lib/errors.js";
import { createTokenVendHandler } from "../../lib/handlers/token-vend-handler.js";
import { LOCAL_AWS_ENV, type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";
import { createLogger } from "../../lib/log/logger.js";
import { describeWithMoto } from "../support/tool-gate.js";
import { type MotoIdentities, startMotoIdentities } from "./moto-identities.js";

const SERVER_ID = "broker-under-test";
const REGION = "eu-west-1";
/** Nothing listens on port 9 (discard) here: every STS call fails to connect. */
const STS_DOWN = "http://127.0.0.1:9";
const log = createLogger({ serviceName: "token-vend", level: "ERROR" });

let dynamo: LocalDynamo;
let tableName: string;
let grants: GrantStore;
let nowMs = Date.now();

beforeAll(async () => {
  dynamo = await startDynalite();
  tableName = await dynamo.createTable();
  grants = new GrantStore({ tableName, client: dynamo.client });
});
afterAll(() => dynamo.close());

function authorizer(mode: AuthorizationSettings["mode"], stsEndpoint?: string): VendAuthorizer {
  return new VendAuthorizer({
    settings: { mode, serverId: SERVER_ID, region: REGION },
    grants,
    ...(stsEndpoint
      ? {
          verifier: new StsIdentityVerifier({
            serverId: SERVER_ID,
            region: REGION,
            endpoint: stsEndpoint,
            now: () => nowMs,
          }),
        }
      : {}),
    log,
    now: () => nowMs,
  });
}

const signed = (
  endpoint: string,
  credentials = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "x" },
) =>
  new IdentitySigner({
    serverId: SERVER_ID,
    region: REGION,
    stsEndpoint: endpoint,
    credentials: async () => credentials,
    now: () => nowMs,
  }).identity();

describe("VendAuthorizer", () => {
  it("refuses to start under perConnection without a verifier (no BROKER_SERVER_ID)", () => {
    expect(() => authorizer(VendAuthorization.PerConnection).assertReady()).toThrow(ConfigurationError);
    expect(() => authorizer(VendAuthorization.StackWide).assertReady()).not.toThrow();
  });

  it("makes token-vend fail its start under perConnection without BROKER_SERVER_ID", () => {
    const broker = createBroker(
      {
        ...LOCAL_AWS_ENV,
        TABLE_NAME: tableName,
        LOCAL_ENCRYPTION_KEY: Buffer.alloc(32).toString("base64"),
        VEND_AUTHORIZATION: "perConnection",
      },
      { dynamo: dynamo.client, log },
    );

    expect(() => createTokenVendHandler(broker, log)).toThrow(
      /VEND_AUTHORIZATION=perConnection needs BROKER_SERVER_ID/,
    );
  });

  it("refuses a caller without an identity under perConnection, before reading anything", async () => {
    const error = await authorizer(VendAuthorization.PerConnection, STS_DOWN)
      .authorize("acme", undefined)
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(AccessDenied);
  });

  it("answers StsUnavailable under perConnection when STS cannot be reached", async () => {
    const identity = await signed(STS_DOWN);

    const error = await authorizer(VendAuthorization.PerConnection, STS_DOWN)
      .authorize("acme", identity)
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(StsUnavailable);
  });

  describe("under stackWide", () => {
    it("counts a vend without an identity as one perConnection would refuse, and serves it", async () => {
      await expect(
        authorizer(VendAuthorization.StackWide, STS_DOWN).authorize("acme", undefined),
      ).resolves.toEqual({
        outcome: "wouldDeny",
      });
    });

    it("serves unchecked when STS cannot be reached", async () => {
      const identity = await signed(STS_DOWN);

      await expect(
        authorizer(VendAuthorization.StackWide, STS_DOWN).authorize("acme", identity),
      ).resolves.toEqual({
        outcome: "unchecked",
      });
    });

    it("serves unchecked when it has no server ID to verify with", async () => {
      const identity: CallerIdentity = await signed(STS_DOWN);

      await expect(authorizer(VendAuthorization.StackWide).authorize("acme", identity)).resolves.toEqual({
        outcome: "unchecked",
      });
    });
  });

  describeWithMoto("a verified caller's grant", () => {
    let ids: MotoIdentities;
    beforeAll(async () => {
      ids = await startMotoIdentities();
    }, 60_000);
    afterAll(() => ids?.moto.close());

    it("is remembered for a minute: a revoke reaches a warm container within GRANT_CACHE_MS", async () => {
      nowMs = Date.now();
      const principal = grantPrincipalOf(ids.roleA.arn);
      await grants.grant("cached", principal);
      const container = authorizer(VendAuthorization.PerConnection, ids.moto.endpoint);
      const identity = await signed(ids.moto.endpoint, ids.roleA.credentials);

      const first = await container.authorize("cached", identity);
      await grants.revoke("cached", principal);
      nowMs += GRANT_CACHE_MS - 1;
      const remembered = await container.authorize("cached", identity);
      nowMs += 1;
      const refused = await container.authorize("cached", identity).catch((e: unknown) => e);

      expect(first).toEqual({
        caller: expect.stringContaining(":assumed-role/consumer-a/"),
        outcome: "granted",
      });
      expect(remembered.outcome).toBe("granted");
      expect(refused).toBeInstanceOf(AccessDenied);
    });

    it("is checked per connection: a grant of one does not open another", async () => {
      nowMs = Date.now();
      await grants.grant("one", grantPrincipalOf(ids.user.arn));
      const container = authorizer(VendAuthorization.PerConnection, ids.moto.endpoint);
      const identity = await signed(ids.moto.endpoint, ids.user.credentials);

      await expect(container.authorize("one", identity)).resolves.toMatchObject({ outcome: "granted" });
      await expect(container.authorize("two", identity)).rejects.toBeInstanceOf(AccessDenied);
    });

    it("under stackWide, names the caller perConnection would refuse", async () => {
      nowMs = Date.now();
      const identity = await signed(ids.moto.endpoint, ids.roleB.credentials);

      await expect(
        authorizer(VendAuthorization.StackWide, ids.moto.endpoint).authorize("one", identity),
      ).resolves.toEqual({
        caller: "arn:aws:sts::123456789012:assumed-role/consumer-b/consumer-b-session",
        outcome: "wouldDeny",
      });
    });
  });
});
