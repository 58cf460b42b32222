import { describe, expect, it } from "vitest";
import { REDACTED, redact, redactString, registerSecret } from "../../lib/log/redactor.js";

const EXACT_TOKEN = "stampNL001.gAAA!IAAAAJx7yq-1zQ2mVbFdXm_8uPZr0b3yKkK1Yq8sWq9o1fEUe3c7s!a";

describe("redact", () => {
  describe("sensitive keys", () => {
    it.each([
      "access_token",
      "accessToken",
      "refresh_token",
      "RefreshToken",
      "client_secret",
      "clientSecret",
      "password",
      "totp_secret",
      "totpSecret",
      "code",
      "Authorization",
      "cookie",
      "set-cookie",
      "id_token",
      "token",
    ])("replaces the value under %s", (key) => {
      expect(redact({ [key]: "short", keep: "visible" })).toEqual({ [key]: REDACTED, keep: "visible" });
    });

    it("replaces whole objects under a sensitive key, at any depth", () => {
      const input = { request: { headers: { authorization: { scheme: "Bearer", value: "abc" } } } };

      expect(redact(input)).toEqual({ request: { headers: { authorization: REDACTED } } });
    });

    it("leaves keys that only contain a sensitive word alone", () => {
      expect(redact({ tokenType: "bearer", passwordPolicy: "strong", codeVersion: 3 })).toEqual({
        tokenType: "bearer",
        passwordPolicy: "strong",
        codeVersion: 3,
      });
    });

    it("keeps absent values absent", () => {
      expect(redact({ password: undefined, token: null })).toEqual({ password: undefined, token: null });
    });
  });

  describe("registered secrets", () => {
    it("scrubs every occurrence inside any string, also URL-encoded", () => {
      registerSecret("s3cr3t/pass word+");

      expect(redactString("a s3cr3t/pass word+ b s3cr3t/pass word+")).toBe(`a ${REDACTED} b ${REDACTED}`);
      expect(redactString(`password=${encodeURIComponent("s3cr3t/pass word+")}`)).toBe(
        `password=${REDACTED}`,
      );
    });

    it("ignores values shorter than 8 characters", () => {
      registerSecret("1234567");

      expect(redactString("pin 1234567")).toBe("pin 1234567");
    });

    it("removes a secret whole when a shorter registered secret is part of it", () => {
      registerSecret("abcdefgh");
      registerSecret("abcdefgh-and-more");

      expect(redactString("x abcdefgh-and-more y")).toBe(`x ${REDACTED} y`);
    });
  });

  describe("token shapes", () => {
    it("scrubs an unregistered Exact token in free text", () => {
      expect(redactString(`refreshing with ${EXACT_TOKEN} now`)).toBe(`refreshing with ${REDACTED} now`);
    });

    it("scrubs a URL-encoded token in a form body", () => {
      const body = `grant_type=refresh_token&refresh_token=${encodeURIComponent(EXACT_TOKEN)}&client_id=abc`;

      // "=" is in the token alphabet (base64 padding), so the parameter name goes with the value.
      expect(redactString(body)).toBe(`grant_type=refresh_token&${REDACTED}&client_id=abc`);
    });

    it("leaves long runs without a '!' and short runs with one alone", () => {
      const uuid = "3f1c2b7e-8d3a-4c5b-9e6f-1a2b3c4d5e6f-0123456789";
      expect(redactString(`conn ${uuid}`)).toBe(`conn ${uuid}`);
      expect(redactString("Hello world! This line is long enough to be scanned, really!")).toBe(
        "Hello world! This line is long enough to be scanned, really!",
      );
    });
  });

  describe("errors", () => {
    it("keeps name, message and stack, redacted, and follows the cause chain", () => {
      const root = new Error(`socket closed while sending ${EXACT_TOKEN}`);
      const error = new TypeError("refresh failed", { cause: root });

      const copy = redact(error) as Error;

      expect(copy).toBeInstanceOf(Error);
      expect(copy.name).toBe("TypeError");
      expect(copy.message).toBe("refresh failed");
      expect(copy.stack).toContain("refresh failed");
      const cause = copy.cause as Error;
      expect(cause).toBeInstanceOf(Error);
      expect(cause.message).toBe(`socket closed while sending ${REDACTED}`);
      expect(cause.stack).not.toContain(EXACT_TOKEN);
      expect(root.message).toContain(EXACT_TOKEN);
    });

    it("redacts own fields by key but keeps system error codes", () => {
      const error = Object.assign(new Error("boom"), {
        code: "ECONNRESET",
        refresh_token: "secret-ish",
        status: 401,
      });
      const oauth = Object.assign(new Error("exchange failed"), { code: "Xa9!someAuthorizationCode" });

      const copy = redact(error) as Error & Record<string, unknown>;
      const oauthCopy = redact(oauth) as Error & Record<string, unknown>;

      expect(copy.code).toBe("ECONNRESET");
      expect(copy.refresh_token).toBe(REDACTED);
      expect(copy.status).toBe(401);
      expect(oauthCopy.code).toBe(REDACTED);
    });
  });

  describe("robustness", () => {
    it("does not throw on cycles, in objects or cause chains", () => {
      const a: Record<string, unknown> = { name: "a" };
      a.self = a;
      const error = new Error("loop");
      (error as { cause?: unknown }).cause = error;

      expect(redact(a)).toEqual({ name: "a", self: "[Circular]" });
      expect((redact(error) as Error).cause).toBe("[Circular]");
    });

    it("prints a shared (non-cyclic) object every time it appears", () => {
      const shared = { id: 1 };

      expect(redact({ left: shared, right: shared })).toEqual({ left: { id: 1 }, right: { id: 1 } });
    });

    it("survives throwing getters and toJSON", () => {
      const nasty = {
        get boom(): never {
          throw new Error("getter");
        },
      };
      const badJson = {
        toJSON: () => {
          throw new Error("toJSON");
        },
      };

      expect(redact({ nasty, badJson, fine: 1 })).toEqual({
        nasty: "[Unserializable]",
        badJson: "[Unserializable]",
        fine: 1,
      });
    });

    it("uses toJSON (Date, URL) and hides binary data", () => {
      const url = new URL(`https://start.exactonline.nl/cb?code=${encodeURIComponent(EXACT_TOKEN)}`);

      expect(redact({ at: new Date(0), url, raw: Buffer.from("secret bytes") })).toEqual({
        at: "1970-01-01T00:00:00.000Z",
        url: `https://start.exactonline.nl/cb?${REDACTED}`,
        raw: "[binary 12 bytes]",
      });
    });

    it("does not modify its input", () => {
      const input = { password: "pw-123456", nested: { text: EXACT_TOKEN } };

      redact(input);

      expect(input).toEqual({ password: "pw-123456", nested: { text: EXACT_TOKEN } });
    });

    it("is fast for short log lines", () => {
      for (let i = 0; i < 200; i++) registerSecret(`perf-secret-${i}-padding`);
      const line = { message: "vend ok", connectionId: "conn-1", generation: 42, waitedMs: 12 };

      const started = performance.now();
      for (let i = 0; i < 10_000; i++) redact(line);
      const perCallMs = (performance.now() - started) / 10_000;

      // Generous bound for slow CI machines; typical is a few microseconds.
      expect(perCallMs).toBeLessThan(0.1);
    });
  });
});
