import { describe, expect, it } from "vitest";
import { RefusalReason } from "../../lib/onboarding/connect-refused.js";
import { formFields } from "../../lib/onboarding/form-body.js";

const FORM = { "content-type": "application/x-www-form-urlencoded" };

describe("formFields", () => {
  it("reads a base64 form body, as a Function URL passes an HTML form", () => {
    const body = Buffer.from("c=acme&n=AAAA&s=a%2Bb%21").toString("base64");

    expect(formFields({ body, isBase64Encoded: true, headers: FORM })).toEqual({
      c: "acme",
      n: "AAAA",
      s: "a+b!",
    });
  });

  it("reads a plain-text form body too", () => {
    expect(formFields({ body: "c=acme&e=1", isBase64Encoded: false, headers: FORM })).toEqual({
      c: "acme",
      e: "1",
    });
  });

  it("keeps the first of a repeated field", () => {
    expect(formFields({ body: "c=first&c=second", isBase64Encoded: false, headers: FORM }).c).toBe("first");
  });

  it("answers no fields for no body", () => {
    expect(formFields({ isBase64Encoded: false, headers: {} })).toEqual({});
  });

  it("refuses a body that is not a form as malformed", () => {
    expect(() =>
      formFields({
        body: '{"c":"acme"}',
        isBase64Encoded: false,
        headers: { "content-type": "application/json" },
      }),
    ).toThrow(expect.objectContaining({ reason: RefusalReason.Malformed }));
  });
});
