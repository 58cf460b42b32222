import { createHash } from "node:crypto";
import { Cookie } from "tough-cookie";
import { describe, expect, it } from "vitest";
import {
  BindingCheck,
  bindingCookieName,
  checkBrowserBinding,
  clearingCookie,
  newBrowserBinding,
} from "../../lib/onboarding/browser-binding.js";

const NONCE = "AAAAAAAAAAAAAAAAAAAAAA";

/** `name=value` as a browser sends it back (what a Function URL event's `cookies` holds). */
function sentBack(setCookie: string): string {
  const cookie = Cookie.parse(setCookie);
  if (!cookie) throw new Error("not a cookie");
  return cookie.cookieString();
}

describe("browser binding", () => {
  it("sets a __Host- cookie: Secure, HttpOnly, Path=/, SameSite=Lax, no Domain, for as long as asked", () => {
    const cookie = Cookie.parse(newBrowserBinding(NONCE, 900).setCookie);

    expect(cookie).toMatchObject({
      key: `__Host-connect-${NONCE}`,
      secure: true,
      httpOnly: true,
      path: "/",
      sameSite: "lax",
      maxAge: 900,
    });
    expect(cookie?.domain).toBeNull();
    expect(cookie?.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("binds the state to the SHA-256 of the cookie's value, never to the value itself", () => {
    const binding = newBrowserBinding(NONCE, 900);
    const value = Cookie.parse(binding.setCookie)?.value ?? "";

    expect(binding.hash).toBe(createHash("sha256").update(value).digest("base64url"));
    expect(binding.hash).not.toContain(value);
  });

  it("makes a new value every time", () => {
    const hashes = new Set(Array.from({ length: 50 }, () => newBrowserBinding(NONCE, 900).hash));

    expect(hashes.size).toBe(50);
  });

  it("matches the cookie the browser sends back, among others", () => {
    const binding = newBrowserBinding(NONCE, 900);

    expect(checkBrowserBinding(["other=1", sentBack(binding.setCookie)], NONCE, binding.hash)).toBe(
      BindingCheck.Match,
    );
  });

  it.each([
    ["no cookies at all", undefined],
    ["only unrelated cookies", ["session=abc"]],
  ])("says 'missing' for %s", (_what, cookies) => {
    expect(checkBrowserBinding(cookies, NONCE, newBrowserBinding(NONCE, 900).hash)).toBe(
      BindingCheck.Missing,
    );
  });

  it("says 'mismatch' for another browser's cookie of the same attempt", () => {
    const ours = newBrowserBinding(NONCE, 900);
    const theirs = newBrowserBinding(NONCE, 900);

    expect(checkBrowserBinding([sentBack(theirs.setCookie)], NONCE, ours.hash)).toBe(BindingCheck.Mismatch);
  });

  it("does not take another attempt's cookie for this one", () => {
    const other = "BBBBBBBBBBBBBBBBBBBBBB";
    const binding = newBrowserBinding(other, 900);

    expect(checkBrowserBinding([sentBack(binding.setCookie)], NONCE, binding.hash)).toBe(
      BindingCheck.Missing,
    );
  });

  it("clears the cookie with the same name and attributes and Max-Age=0", () => {
    const cookie = Cookie.parse(clearingCookie(NONCE));

    expect(cookie).toMatchObject({
      key: bindingCookieName(NONCE),
      value: "",
      maxAge: 0,
      path: "/",
      secure: true,
      httpOnly: true,
    });
  });
});
