import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallerIdentity } from "../../lib/auth/caller-identity.js";
import {
  checkIdentityRequest,
  type IdentityRequestExpectations,
} from "../../lib/auth/identity-request-checks.js";
import { callerPrincipalOf, grantPrincipalOf } from "../../lib/auth/principal.js";
import { StsIdentityVerifier } from "../../lib/auth/sts-identity-verifier.js";
import { IdentitySigner } from "../../lib/client/identity-signer.js";
import { AccessDenied } from "../../lib/errors.js";

// An attacker's view of `callerIdentity` (found by the issue-10 review). Requests are signed by
// the client library's real SigV4 signer with made-up credentials (no network needed to sign).

const T0 = Date.parse("2026-11-26T12:00:00.000Z");
const CREDENTIALS = async () => ({ accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "not-a-real-key" });
const EXPECTED: IdentityRequestExpectations = {
  serverId: "broker-a",
  region: "eu-west-1",
  host: "sts.eu-west-1.amazonaws.com",
  nowMs: T0,
};

async function signed(stsEndpoint?: string): Promise<CallerIdentity> {
  return new IdentitySigner({
    serverId: "broker-a",
    region: "eu-west-1",
    credentials: CREDENTIALS,
    now: () => T0,
    ...(stsEndpoint ? { stsEndpoint } : {}),
  }).identity();
}

function withSignedHeaders(identity: CallerIdentity, list: string): CallerIdentity {
  const authorization = identity.headers.authorization ?? "";
  return {
    ...identity,
    headers: {
      ...identity.headers,
      authorization: authorization.replace(/SignedHeaders=[^,]+/, `SignedHeaders=${list}`),
    },
  };
}

describe("attacks on checkIdentityRequest", () => {
  it("refuses a SignedHeaders entry that names a header the request does not carry, even one named like an Object.prototype member", async () => {
    const identity = await signed();
    const list = /SignedHeaders=([^,]+)/.exec(identity.headers.authorization ?? "")?.[1] ?? "";

    // `headers` is a plain object literal: headers["constructor"] is Object, not undefined.
    expect(() => checkIdentityRequest(withSignedHeaders(identity, `constructor;${list}`), EXPECTED)).toThrow(
      AccessDenied,
    );
  });
});

describe("attacks on StsIdentityVerifier", () => {
  let server: Server;
  let endpoint: string;
  let requests = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      requests += 1;
      req.resume();
      res.writeHead(403, { "content-type": "text/xml" });
      res.end("<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("answers AccessDenied, not StsUnavailable, for a header value fetch cannot send (the caller's fault)", async () => {
    const identity = await signed(endpoint);
    const bad = { ...identity, headers: { ...identity.headers, "x-amz-security-token": "tok\r\nx-evil: 1" } };
    const verifier = new StsIdentityVerifier({
      serverId: "broker-a",
      region: "eu-west-1",
      endpoint,
      now: () => T0,
    });

    const error = await verifier.verify(bad).then(
      () => undefined,
      (caught: Error) => caught,
    );

    expect(requests).toBe(0);
    expect(error).toBeInstanceOf(AccessDenied);
  });
});

describe("principal confusions that hold", () => {
  it("never matches an IAM user to a role grant of the same name, nor a role session to a user grant", () => {
    const roleGrant = grantPrincipalOf("arn:aws:iam::123456789012:role/consumer");
    const userGrant = grantPrincipalOf("arn:aws:iam::123456789012:user/consumer");

    expect(callerPrincipalOf("arn:aws:iam::123456789012:user/consumer")).not.toBe(roleGrant);
    expect(callerPrincipalOf("arn:aws:sts::123456789012:assumed-role/consumer/s1")).not.toBe(userGrant);
  });

  it("does not let a federated user or another partition's session reach a role grant", () => {
    const roleGrant = grantPrincipalOf("arn:aws:iam::123456789012:role/consumer");

    expect(callerPrincipalOf("arn:aws:sts::123456789012:federated-user/consumer")).not.toBe(roleGrant);
    expect(callerPrincipalOf("arn:aws-cn:sts::123456789012:assumed-role/consumer/s1")).not.toBe(roleGrant);
  });

  it("fails closed on a user granted without its path (STS answers the user's ARN with path)", () => {
    expect(callerPrincipalOf("arn:aws:iam::123456789012:user/team/alice")).not.toBe(
      grantPrincipalOf("arn:aws:iam::123456789012:user/alice"),
    );
  });
});
