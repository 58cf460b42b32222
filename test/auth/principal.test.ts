import { describe, expect, it } from "vitest";
import { callerPrincipalOf, grantPrincipalOf } from "../../lib/auth/principal.js";
import { ValidationError } from "../../lib/errors.js";

describe("principal keys", () => {
  describe("grantPrincipalOf", () => {
    it.each([
      [
        "a role without path",
        "arn:aws:iam::123456789012:role/consumer",
        "arn:aws:iam::123456789012:role/consumer",
      ],
      [
        "a role with a path",
        "arn:aws:iam::123456789012:role/apps/team/consumer",
        "arn:aws:iam::123456789012:role/consumer",
      ],
      [
        "a role in another partition",
        "arn:aws-cn:iam::123456789012:role/x/c",
        "arn:aws-cn:iam::123456789012:role/c",
      ],
      [
        "a user (kept whole)",
        "arn:aws:iam::123456789012:user/team/alice",
        "arn:aws:iam::123456789012:user/team/alice",
      ],
    ])("stores %s under its key", (_name, arn, key) => {
      expect(grantPrincipalOf(arn)).toBe(key);
    });

    it("refuses a role session, naming the role to grant instead", () => {
      expect(() => grantPrincipalOf("arn:aws:sts::123456789012:assumed-role/consumer/session-1")).toThrow(
        new ValidationError(
          "--principal names a role session (arn:aws:sts::123456789012:assumed-role/consumer/session-1); " +
            "grant the role instead: arn:aws:iam::123456789012:role/consumer",
        ),
      );
    });

    it.each([
      ["a group", "arn:aws:iam::123456789012:group/admins"],
      ["the account root", "arn:aws:iam::123456789012:root"],
      ["a short account", "arn:aws:iam::12345:role/consumer"],
      ["another service", "arn:aws:lambda:eu-west-1:123456789012:function:consumer"],
      ["a bare name", "consumer"],
      ["a wildcard", "arn:aws:iam::123456789012:role/*"],
    ])("refuses %s", (_name, arn) => {
      expect(() => grantPrincipalOf(arn)).toThrow(ValidationError);
    });
  });

  describe("callerPrincipalOf", () => {
    it("matches an assumed role's session to its role, whatever path the role has", () => {
      const caller = callerPrincipalOf("arn:aws:sts::123456789012:assumed-role/consumer/1700000000000");

      expect(caller).toBe(grantPrincipalOf("arn:aws:iam::123456789012:role/apps/consumer"));
      expect(caller).toBe(grantPrincipalOf("arn:aws:iam::123456789012:role/consumer"));
    });

    it("does not match a role of the same name in another account", () => {
      expect(callerPrincipalOf("arn:aws:sts::210987654321:assumed-role/consumer/s")).not.toBe(
        grantPrincipalOf("arn:aws:iam::123456789012:role/consumer"),
      );
    });

    it("matches a user on its whole ARN, path included", () => {
      const caller = callerPrincipalOf("arn:aws:iam::123456789012:user/team/alice");

      expect(caller).toBe(grantPrincipalOf("arn:aws:iam::123456789012:user/team/alice"));
      expect(caller).not.toBe(grantPrincipalOf("arn:aws:iam::123456789012:user/alice"));
    });

    it("keeps any other caller's ARN as it is", () => {
      expect(callerPrincipalOf("arn:aws:iam::123456789012:root")).toBe("arn:aws:iam::123456789012:root");
    });
  });
});
