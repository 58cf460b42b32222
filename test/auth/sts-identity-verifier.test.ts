import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SIGNATURE_WINDOW_MS, stsEndpointFor } from "../../lib/auth/caller-identity.js";
import { grantPrincipalOf } from "../../lib/auth/principal.js";
import { StsIdentityVerifier } from "../../lib/auth/sts-identity-verifier.js";
import { type AwsCredentials, IdentitySigner } from "../../lib/client/identity-signer.js";
import { AccessDenied, StsUnavailable } from "../../lib/errors.js";
import { describeWithMoto } from "../support/tool-gate.js";
import { type MotoIdentities, startMotoIdentities } from "./moto-identities.js";

// The verifier against moto_server with signature checks on (its own instance): moto recomputes
// each request's SigV4 signature from the credentials it issued and answers GetCallerIdentity
// with the signer's ARN, as STS does.

const SERVER_ID = "broker-under-test";
const REGION = "eu-west-1";

let nowMs = Date.now();
const now = () => nowMs;
/** Every URL the verifier fetched. */
const fetched: string[] = [];
const recordingFetch: typeof fetch = (input, init) => {
  fetched.push(String(input));
  return fetch(input, init);
};

function signer(endpoint: string, credentials: AwsCredentials, serverId = SERVER_ID): IdentitySigner {
  return new IdentitySigner({
    serverId,
    region: REGION,
    stsEndpoint: endpoint,
    credentials: async () => credentials,
    now,
  });
}

function verifierAt(endpoint: string): StsIdentityVerifier {
  return new StsIdentityVerifier({
    serverId: SERVER_ID,
    region: REGION,
    endpoint,
    fetch: recordingFetch,
    now,
  });
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected a refusal");
    },
    (error: Error) => error,
  );
}

afterEach(() => {
  fetched.length = 0;
  nowMs = Date.now();
});

describe("StsIdentityVerifier", () => {
  it("sends to STS's regional endpoint, built from its own region", () => {
    expect(new StsIdentityVerifier({ serverId: SERVER_ID, region: "eu-central-1" }).host).toBe(
      "sts.eu-central-1.amazonaws.com",
    );
    expect(stsEndpointFor("cn-north-1")).toBe("https://sts.cn-north-1.amazonaws.com.cn");
  });

  describeWithMoto("against moto_server with request signing enforced", () => {
    let ids: MotoIdentities;
    beforeAll(async () => {
      ids = await startMotoIdentities();
    }, 60_000);
    afterAll(() => ids?.moto.close());

    it("learns an IAM user's ARN, path included", async () => {
      const identity = await signer(ids.moto.endpoint, ids.user.credentials).identity();

      const caller = await verifierAt(ids.moto.endpoint).verify(identity);

      expect(caller).toEqual({ arn: ids.user.arn, principal: ids.user.arn });
      expect(ids.user.arn).toBe("arn:aws:iam::123456789012:user/team/alice");
    });

    it("learns a role session's ARN, which STS gives without the role's path, and matches it to the role", async () => {
      const identity = await signer(ids.moto.endpoint, ids.roleA.credentials).identity();

      const caller = await verifierAt(ids.moto.endpoint).verify(identity);

      expect(ids.roleA.arn).toBe("arn:aws:iam::123456789012:role/apps/consumer-a");
      expect(caller.arn).toBe("arn:aws:sts::123456789012:assumed-role/consumer-a/consumer-a-session");
      expect(caller.principal).toBe(grantPrincipalOf(ids.roleA.arn));
    });

    it("answers AccessDenied when STS refuses the signature (moto checks it)", async () => {
      const forged = { ...ids.user.credentials, secretAccessKey: "not-alices-secret" };
      const identity = await signer(ids.moto.endpoint, forged).identity();

      const error = await failure(verifierAt(ids.moto.endpoint).verify(identity));

      expect(error).toBeInstanceOf(AccessDenied);
      expect(error.message).toBe(
        "STS refused the caller's signed identity (403 SignatureDoesNotMatch): sign again with valid credentials",
      );
    });

    it("answers a warm verification from its cache until the signature's 15 minutes end", async () => {
      const identity = await signer(ids.moto.endpoint, ids.roleB.credentials).identity();
      const verifier = verifierAt(ids.moto.endpoint);

      const first = await verifier.verify(identity);
      nowMs += SIGNATURE_WINDOW_MS - 1_000;
      const warm = await verifier.verify(identity);
      nowMs += 2_000;
      const expired = await failure(verifier.verify(identity));

      expect(warm).toEqual(first);
      expect(fetched).toEqual([`${ids.moto.endpoint}/`]);
      expect(expired).toBeInstanceOf(AccessDenied);
      expect(expired.message).toMatch(/more than 15 minutes ago/);
    });

    it("verifies a newly signed request of the same caller again (the cache key is the signed request)", async () => {
      const verifier = verifierAt(ids.moto.endpoint);
      const first = await signer(ids.moto.endpoint, ids.roleB.credentials).identity();
      nowMs += 1_000;
      const second = await signer(ids.moto.endpoint, ids.roleB.credentials).identity();

      await verifier.verify(first);
      await verifier.verify(second);

      expect(second).not.toEqual(first);
      expect(fetched).toHaveLength(2);
    });

    it("calls nothing for a request signed for another host: the event cannot choose where token-vend sends", async () => {
      const elsewhere = await signer("http://127.0.0.1:9", ids.user.credentials).identity();

      const error = await failure(verifierAt(ids.moto.endpoint).verify(elsewhere));

      expect(error).toBeInstanceOf(AccessDenied);
      expect(fetched).toEqual([]);
    });

    it("calls nothing for a request signed for another broker", async () => {
      const other = await signer(ids.moto.endpoint, ids.user.credentials, "another-broker").identity();

      const error = await failure(verifierAt(ids.moto.endpoint).verify(other));

      expect(error.message).toContain("not this broker's");
      expect(fetched).toEqual([]);
    });
  });

  describe("when STS fails", () => {
    let server: Server;
    let endpoint: string;
    let answer: { status: number; body: string } | "silence" = "silence";
    beforeAll(async () => {
      server = createServer((req, res) => {
        req.resume();
        if (answer === "silence") return;
        res.writeHead(answer.status, { "content-type": "text/xml" });
        res.end(answer.body);
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    const credentials = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "not-a-real-key" };
    const errorBody = (code: string) =>
      `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>m</Message></Error></ErrorResponse>`;

    it.each([
      ["a 503", { status: 503, body: "" }, "STS answered 503 (unknown) while verifying the caller"],
      [
        "throttling",
        { status: 400, body: errorBody("Throttling") },
        "STS answered 400 (Throttling) while verifying the caller",
      ],
      [
        "a 200 without an ARN",
        { status: 200, body: "<html>portal</html>" },
        "STS answered GetCallerIdentity without a caller ARN",
      ],
    ])("answers StsUnavailable (retryable, not the caller's fault) on %s", async (_name, reply, message) => {
      answer = reply;
      const identity = await signer(endpoint, credentials).identity();

      const error = await failure(verifierAt(endpoint).verify(identity));

      expect(error).toBeInstanceOf(StsUnavailable);
      expect(error.message).toBe(message);
      expect((error as StsUnavailable).retryAfterSeconds).toBe(1);
    });

    it("gives up at the invocation's deadline when STS does not answer", async () => {
      answer = "silence";
      const identity = await signer(endpoint, credentials).identity();
      const startedMs = Date.now();

      const error = await failure(verifierAt(endpoint).verify(identity, nowMs + 300));

      expect(error).toBeInstanceOf(StsUnavailable);
      expect(Date.now() - startedMs).toBeLessThan(2_000);
    });

    it("answers AccessDenied when STS refuses the caller's key", async () => {
      answer = { status: 403, body: errorBody("InvalidClientTokenId") };
      const identity = await signer(endpoint, credentials).identity();

      const error = await failure(verifierAt(endpoint).verify(identity));

      expect(error).toBeInstanceOf(AccessDenied);
      expect(error.message).toContain("(403 InvalidClientTokenId)");
    });
  });
});
