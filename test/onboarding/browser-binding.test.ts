import { createHash } from "node:crypto";
import { Cookie } from "tough-cookie";
import { describe, expect, it } from "vitest";
import {
  BindingCheck,
  bindingCookieName,
  checkBrowserBinding,
  clearingCookie,
  newBindingCookie,
  presentedBinding,
} from "../../lib/onboarding/browser-binding.js";

const NONCE = "AAAAAAAAAAAAAAAAAAAAAA";

/** `name=value` as a browser sends it back (what a Function URL event's `cookies` holds). */
function sentBack(setCookie: string): string {
  const cookie = Cookie.parse(setCookie);
  if (!cookie) throw new Error("not a cookie");
  return cookie.cookieString();
}

/** A cookie as the GET sets it, and the hash the POST binds the state to when it comes back. */
function binding(nonce = NONCE): { readonly sent: string; readonly hash: string } {
  const sent = sentBack(newBindingCookie(nonce, 900));
  const hash = presentedBinding([sent], nonce);
  if (hash === undefined) throw new Error("the cookie was not recognized");
  return { sent, hash };
}

describe("browser binding", () => {
  it("sets a __Host- cookie: Secure, HttpOnly, Path=/, SameSite=Lax, no Domain, for as long as asked", () => {
    const cookie = Cookie.parse(newBindingCookie(NONCE, 1800));

    expect(cookie).toMatchObject({
      key: `__Host-connect-${NONCE}`,
      secure: true,
      httpOnly: true,
      path: "/",
      sameSite: "lax",
      maxAge: 1800,
    });
    expect(cookie?.domain).toBeNull();
    expect(cookie?.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("binds the state to the SHA-256 of the presented cookie's value, never to the value itself", () => {
    const { sent, hash } = binding();
    const value = Cookie.parse(sent)?.value ?? "";

    expect(hash).toBe(createHash("sha256").update(value).digest("base64url"));
    expect(hash).not.toContain(value);
  });

  it("makes a new value every time", () => {
    const values = new Set(
      Array.from({ length: 50 }, () => Cookie.parse(newBindingCookie(NONCE, 900))?.value),
    );

    expect(values.size).toBe(50);
  });

  it.each([
    ["no cookies at all", undefined],
    ["only unrelated cookies", ["session=abc"]],
    ["another attempt's cookie", [`__Host-connect-${"B".repeat(22)}=${"v".repeat(43)}`]],
    ["an empty cookie of this attempt", [`__Host-connect-${NONCE}=`]],
  ])("gives the POST nothing to bind to for %s", (_what, cookies) => {
    expect(presentedBinding(cookies, NONCE)).toBeUndefined();
  });

  it("matches the cookie the browser sends back, among others", () => {
    const { sent, hash } = binding();

    expect(checkBrowserBinding(["other=1", sent], NONCE, hash)).toBe(BindingCheck.Match);
  });

  it.each([
    ["no cookies at all", undefined],
    ["only unrelated cookies", ["session=abc"]],
  ])("says 'missing' for %s", (_what, cookies) => {
    expect(checkBrowserBinding(cookies, NONCE, binding().hash)).toBe(BindingCheck.Missing);
  });

  it("says 'mismatch' for another browser's cookie of the same attempt", () => {
    const ours = binding();
    const theirs = binding();

    expect(checkBrowserBinding([theirs.sent], NONCE, ours.hash)).toBe(BindingCheck.Mismatch);
  });

  it("does not take another attempt's cookie for this one", () => {
    const other = binding("BBBBBBBBBBBBBBBBBBBBBB");

    expect(checkBrowserBinding([other.sent], NONCE, other.hash)).toBe(BindingCheck.Missing);
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
