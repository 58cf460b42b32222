import { describe, expect, it } from "vitest";
import { ValidationError } from "../../lib/errors.js";
import { checkBaseUrl, EXACT_HOSTS } from "../../lib/exact/base-url.js";

describe("checkBaseUrl", () => {
  it.each(EXACT_HOSTS.map((host) => [host]))("accepts https://%s", (host) => {
    expect(checkBaseUrl(`https://${host}/`, false)).toBe(`https://${host}`);
  });

  it.each([
    ["another host", "https://evil.example.com"],
    ["a look-alike", "https://start.exactonline.nl.evil.example"],
    ["plain http", "http://start.exactonline.nl"],
    ["a port", "https://start.exactonline.nl:8443"],
    ["a path", "https://start.exactonline.nl/api"],
    ["credentials", "https://user:pw@start.exactonline.nl"],
    ["loopback without the switch", "http://127.0.0.1:8123"],
    ["not a URL", "start.exactonline.nl"],
  ])("refuses %s", (_name, url) => {
    expect(() => checkBaseUrl(url, false)).toThrow(ValidationError);
  });

  it("admits loopback only when EXACT_ALLOW_LOOPBACK is on", () => {
    expect(checkBaseUrl("http://127.0.0.1:8123", true)).toBe("http://127.0.0.1:8123");
    expect(() => checkBaseUrl("http://10.0.0.1:8123", true)).toThrow(ValidationError);
  });
});
