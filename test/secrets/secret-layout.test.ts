import { describe, expect, it } from "vitest";
import { type ConnectionSecret, loginCredentialsOf } from "../../lib/secrets/connection-secret.js";
import { splitSecretIdFor } from "../../lib/secrets/secret-layout.js";

describe("splitSecretIdFor", () => {
  it.each([
    ["exact-token-broker/connections/acme", "exact-token-broker/client-secrets/acme"],
    ["exact-token-broker/client-secrets/acme", "exact-token-broker/client-secrets/acme"],
    ["exact/acme", "exact/acme"],
  ])("%s → %s", (secretId, splitId) => {
    expect(splitSecretIdFor(secretId)).toBe(splitId);
  });
});

describe("loginCredentialsOf", () => {
  const FULL = { clientSecret: "x", username: "u@example.com", password: "p", totpSecret: "t" };
  it.each<[string, ConnectionSecret, boolean]>([
    ["all three present", FULL, true],
    ["only the client secret", { clientSecret: "x" }, false],
    ["no TOTP secret", { clientSecret: "x", username: "u", password: "p" }, false],
    ["an empty password", { ...FULL, password: "" }, false],
  ])("%s → %s", (_label, secret, expected) => {
    expect(loginCredentialsOf(secret)).toEqual(
      expected ? { username: "u@example.com", password: "p", totpSecret: "t" } : undefined,
    );
  });
});
