import { describe, expect, it } from "vitest";
import { ConnectRefused, RefusalReason } from "../../lib/onboarding/connect-refused.js";
import {
  LINK_TTL_SECONDS,
  newNonce,
  type SignedClaims,
  type StateClaims,
  signLink,
  signState,
  verifyLink,
  verifyState,
} from "../../lib/onboarding/link-signing.js";

const KEY = Buffer.from("link-signing-key-for-tests-0123456789abcdef");
const OTHER_KEY = Buffer.from("another-signing-key-for-tests-0123456789ab");
const NOW_MS = 1_760_000_000_000;
const CLAIMS: SignedClaims = {
  connectionId: "acme-prod",
  nonce: "AAAAAAAAAAAAAAAAAAAAAA",
  expiresAtEpochSec: NOW_MS / 1000 + LINK_TTL_SECONDS,
};

const STATE_CLAIMS: StateClaims = {
  ...CLAIMS,
  browserBinding: "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
};

function refusal(run: () => unknown): ConnectRefused {
  try {
    run();
  } catch (error) {
    if (error instanceof ConnectRefused) return error;
    throw error;
  }
  throw new Error("expected a ConnectRefused, got none");
}

/**
 * Changes the first character of a MAC (the text after the last "." if any). Not the last one:
 * the last base64url character of 32 bytes carries two unused bits, which a decoder ignores.
 */
function tamperMac(value: string): string {
  const at = value.lastIndexOf(".") + 1;
  return value.slice(0, at) + (value[at] === "A" ? "B" : "A") + value.slice(at + 1);
}

describe("newNonce", () => {
  it("makes 128-bit base64url nonces that differ every time", () => {
    const nonces = new Set(Array.from({ length: 100 }, () => newNonce()));

    expect(nonces.size).toBe(100);
    for (const nonce of nonces) expect(nonce).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});

describe("link signing", () => {
  it("accepts its own link and returns the claims", () => {
    const query = signLink(KEY, CLAIMS);

    expect(verifyLink(KEY, { ...query }, NOW_MS)).toEqual(CLAIMS);
  });

  it.each([
    ["the connection", { c: "acme-test" }],
    ["the nonce", { n: "BAAAAAAAAAAAAAAAAAAAAA" }],
    ["the expiry (a later one)", { e: String(CLAIMS.expiresAtEpochSec + 3600) }],
    ["the signature", { s: tamperMac(signLink(KEY, CLAIMS).s) }],
  ])("refuses a link whose %s was changed, as a bad signature", (_what, change) => {
    const query = { ...signLink(KEY, CLAIMS), ...change };

    const error = refusal(() => verifyLink(KEY, query, NOW_MS));

    expect(error.reason).toBe(RefusalReason.BadSignature);
    expect(error.subject).toBe("link");
  });

  it("refuses a link signed with another key", () => {
    const query = signLink(OTHER_KEY, CLAIMS);

    expect(refusal(() => verifyLink(KEY, { ...query }, NOW_MS)).reason).toBe(RefusalReason.BadSignature);
  });

  it("refuses a link for one connection presented for another (signature copied over)", () => {
    const forOther = signLink(KEY, { ...CLAIMS, connectionId: "other-conn" });
    const query = { ...signLink(KEY, CLAIMS), s: forOther.s };

    expect(refusal(() => verifyLink(KEY, query, NOW_MS)).reason).toBe(RefusalReason.BadSignature);
  });

  it("accepts a link up to the last millisecond and refuses it from its expiry on", () => {
    const query = { ...signLink(KEY, CLAIMS) };
    const expiryMs = CLAIMS.expiresAtEpochSec * 1000;

    expect(verifyLink(KEY, query, expiryMs - 1).connectionId).toBe("acme-prod");
    const error = refusal(() => verifyLink(KEY, query, expiryMs));
    expect(error.reason).toBe(RefusalReason.Expired);
    expect(error.connectionId).toBe("acme-prod");
  });

  it("checks the signature before the expiry: a forged expired link is 'not valid', not 'expired'", () => {
    const query = { ...signLink(OTHER_KEY, CLAIMS) };

    const error = refusal(() => verifyLink(KEY, query, CLAIMS.expiresAtEpochSec * 1000 + 1));

    expect(error.reason).toBe(RefusalReason.BadSignature);
    expect(error.connectionId).toBeUndefined();
  });

  it.each([
    ["no parameters", {}],
    ["no signature", { ...signLink(KEY, CLAIMS), s: undefined }],
    ["a connection ID that is not one", { ...signLink(KEY, CLAIMS), c: "../etc" }],
    ["a short nonce", { ...signLink(KEY, CLAIMS), n: "abc" }],
    ["a non-numeric expiry", { ...signLink(KEY, CLAIMS), e: "tomorrow" }],
  ])("refuses %s as malformed", (_what, query) => {
    expect(refusal(() => verifyLink(KEY, query, NOW_MS)).reason).toBe(RefusalReason.Malformed);
  });
});

describe("state signing", () => {
  function withPayload(state: string, claims: unknown): string {
    const mac = state.split(".")[1];
    return `${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${mac}`;
  }

  it("accepts its own state and returns the claims", () => {
    expect(verifyState(KEY, signState(KEY, STATE_CLAIMS), NOW_MS)).toEqual(STATE_CLAIMS);
  });

  it("refuses a state re-pointed at another connection (payload changed, signature kept)", () => {
    const forged = withPayload(signState(KEY, STATE_CLAIMS), { ...STATE_CLAIMS, connectionId: "victim" });

    const error = refusal(() => verifyState(KEY, forged, NOW_MS));

    expect(error.reason).toBe(RefusalReason.BadSignature);
    expect(error.subject).toBe("state");
  });

  it("refuses a state re-bound to another browser's cookie hash (payload changed, signature kept)", () => {
    const forged = withPayload(signState(KEY, STATE_CLAIMS), {
      ...STATE_CLAIMS,
      browserBinding: "A".repeat(43),
    });

    expect(refusal(() => verifyState(KEY, forged, NOW_MS)).reason).toBe(RefusalReason.BadSignature);
  });

  it("refuses a state with a tampered signature or signed with another key", () => {
    expect(refusal(() => verifyState(KEY, tamperMac(signState(KEY, STATE_CLAIMS)), NOW_MS)).reason).toBe(
      RefusalReason.BadSignature,
    );
    expect(refusal(() => verifyState(KEY, signState(OTHER_KEY, STATE_CLAIMS), NOW_MS)).reason).toBe(
      RefusalReason.BadSignature,
    );
  });

  it("refuses an expired state", () => {
    const state = signState(KEY, STATE_CLAIMS);

    expect(verifyState(KEY, state, CLAIMS.expiresAtEpochSec * 1000 - 1).nonce).toBe(CLAIMS.nonce);
    expect(refusal(() => verifyState(KEY, state, CLAIMS.expiresAtEpochSec * 1000)).reason).toBe(
      RefusalReason.Expired,
    );
  });

  it("does not take a link's signature for a state's (domain separation)", () => {
    const payload = signState(KEY, STATE_CLAIMS).split(".")[0];
    const linkMac = signLink(KEY, CLAIMS).s;

    expect(refusal(() => verifyState(KEY, `${payload}.${linkMac}`, NOW_MS)).reason).toBe(
      RefusalReason.BadSignature,
    );
  });

  it.each([
    ["missing", undefined],
    ["empty", ""],
    ["without a signature", "eyJhIjoxfQ"],
    ["with an extra part", `${signState(KEY, STATE_CLAIMS)}.x`],
    ["far too long", `${"a".repeat(600)}.${"b".repeat(43)}`],
    ["not base64url", "<script>.x"],
  ])("refuses a state that is %s as malformed", (_what, state) => {
    expect(refusal(() => verifyState(KEY, state, NOW_MS)).reason).toBe(RefusalReason.Malformed);
  });
});
