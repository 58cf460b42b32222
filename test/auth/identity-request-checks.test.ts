import { describe, expect, it } from "vitest";
import {
  type CallerIdentity,
  GET_CALLER_IDENTITY_BODY,
  SERVER_ID_HEADER,
} from "../../lib/auth/caller-identity.js";
import {
  checkIdentityRequest,
  type IdentityRequestExpectations,
} from "../../lib/auth/identity-request-checks.js";
import { IdentitySigner } from "../../lib/client/identity-signer.js";
import { AccessDenied } from "../../lib/errors.js";

// The checks token-vend makes itself before a signed identity goes to STS. The requests are
// signed by the client library's real SigV4 signer with made-up credentials (signing needs no network).

const T0 = Date.parse("2026-11-26T12:00:00.000Z");
const CREDENTIALS = async () => ({ accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "not-a-real-key" });
const EXPECTED: IdentityRequestExpectations = {
  serverId: "broker-a",
  region: "eu-west-1",
  host: "sts.eu-west-1.amazonaws.com",
  nowMs: T0,
};

async function signed(
  options: { serverId?: string; region?: string; signedAtMs?: number; stsEndpoint?: string } = {},
): Promise<CallerIdentity> {
  return new IdentitySigner({
    serverId: options.serverId ?? "broker-a",
    region: options.region ?? "eu-west-1",
    credentials: CREDENTIALS,
    now: () => options.signedAtMs ?? T0,
    ...(options.stsEndpoint ? { stsEndpoint: options.stsEndpoint } : {}),
  }).identity();
}

function refusal(identity: CallerIdentity, expected: Partial<IdentityRequestExpectations> = {}): string {
  try {
    checkIdentityRequest(identity, { ...EXPECTED, ...expected });
  } catch (error) {
    expect(error).toBeInstanceOf(AccessDenied);
    return (error as Error).message;
  }
  throw new Error("expected the request to be refused");
}

/** The same request with its Authorization header's SignedHeaders list replaced. */
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

describe("checkIdentityRequest", () => {
  it("accepts what the client library signs, and says when it was signed", async () => {
    const identity = await signed();

    const checked = checkIdentityRequest(identity, EXPECTED);

    expect(checked.signedAtMs).toBe(T0);
    expect(checked.body).toBe(GET_CALLER_IDENTITY_BODY);
    expect(Object.keys(checked.headers).sort()).toEqual([
      "authorization",
      "content-type",
      "host",
      "x-amz-content-sha256",
      "x-amz-date",
      SERVER_ID_HEADER.toLowerCase(),
    ]);
  });

  describe("the signature's date (15 minutes either way, as STS)", () => {
    it.each([
      ["signed 14 minutes ago", -14 * 60_000],
      ["signed 14 minutes ahead", 14 * 60_000],
    ])("accepts a request %s", async (_name, offsetMs) => {
      const identity = await signed({ signedAtMs: T0 + offsetMs });

      expect(checkIdentityRequest(identity, EXPECTED).signedAtMs).toBe(T0 + offsetMs);
    });

    it("refuses a request signed more than 15 minutes ago", async () => {
      const identity = await signed({ signedAtMs: T0 - 15 * 60_000 - 1_000 });

      expect(refusal(identity)).toMatch(/signed at 20261126T114459Z, more than 15 minutes ago .*sign again/);
    });

    it("refuses a request dated more than 15 minutes ahead", async () => {
      const identity = await signed({ signedAtMs: T0 + 16 * 60_000 });

      expect(refusal(identity)).toMatch(/more than 15 minutes ahead/);
    });

    it.each([
      ["not a timestamp", "yesterday"],
      ["an impossible date", "20261332T120000Z"],
    ])("refuses an X-Amz-Date that is %s", async (_name, date) => {
      const identity = await signed();

      expect(refusal({ ...identity, headers: { ...identity.headers, "x-amz-date": date } })).toMatch(
        /X-Amz-Date is not a SigV4 timestamp/,
      );
    });
  });

  describe("the server-ID header", () => {
    it("refuses a request signed for another broker", async () => {
      const identity = await signed({ serverId: "broker-b" });

      expect(refusal(identity)).toContain(`${SERVER_ID_HEADER} is "broker-b", not this broker's`);
    });

    it("refuses a request whose server-ID header is not among the signed headers", async () => {
      const identity = await signed();
      const unsigned = withSignedHeaders(identity, "content-type;host;x-amz-content-sha256;x-amz-date");

      expect(refusal(unsigned)).toBe(
        `the caller's signed identity was refused: header ${SERVER_ID_HEADER.toLowerCase()} is not among the SignedHeaders`,
      );
    });

    it("refuses a request without the header", async () => {
      const identity = await signed();
      const { [SERVER_ID_HEADER.toLowerCase()]: _gone, ...headers } = identity.headers;

      expect(refusal({ ...identity, headers })).toMatch(/signed header x-exact-broker-server-id is missing/);
    });
  });

  describe("where the request may go", () => {
    it("refuses a request signed for another host: token-vend never sends it anywhere but its own STS endpoint", async () => {
      const identity = await signed({ stsEndpoint: "https://attacker.example.com" });

      expect(refusal(identity)).toContain(
        'signed for host "attacker.example.com"; token-vend verifies at sts.eu-west-1.amazonaws.com',
      );
    });

    it("refuses a request signed for another region", async () => {
      const identity = await signed({ region: "us-east-1" });

      expect(refusal(identity)).toContain(
        "signed for region us-east-1; token-vend verifies at STS in eu-west-1",
      );
    });

    it("refuses a header it does not forward (nothing outside the signature reaches STS)", async () => {
      const identity = await signed();

      expect(
        refusal({ ...identity, headers: { ...identity.headers, "X-Forwarded-Host": "elsewhere" } }),
      ).toContain('header "X-Forwarded-Host" is not accepted');
    });

    it("refuses a header given twice in different case", async () => {
      const identity = await signed();

      expect(
        refusal({ ...identity, headers: { ...identity.headers, Host: "sts.eu-west-1.amazonaws.com" } }),
      ).toContain('header "Host" appears twice');
    });

    it.each([
      ["another action", "Action=AssumeRole&Version=2011-06-15&RoleArn=x"],
      ["extra parameters", `${GET_CALLER_IDENTITY_BODY}&Extra=1`],
    ])("refuses a body with %s", async (_name, body) => {
      const identity = await signed();

      expect(refusal({ ...identity, body })).toContain("the body must be exactly");
    });

    it("refuses a request without a SigV4 Authorization header", async () => {
      const identity = await signed();
      const { authorization: _gone, ...headers } = identity.headers;

      expect(refusal({ ...identity, headers })).toContain("no SigV4 Authorization header");
    });
  });

  it("never puts the signature or the credentials in its message", async () => {
    const identity = await signed({ serverId: "broker-b" });
    const signature = /Signature=([0-9a-f]{64})/.exec(identity.headers.authorization ?? "")?.[1] ?? "missing";

    const message = refusal(identity);

    expect(message).not.toContain(signature);
    expect(message).not.toContain("AKIAIOSFODNN7EXAMPLE");
  });
});
