import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * ASP.NET-style antiforgery tokens for Exact's own pages: the form's hidden
 * `__RequestVerificationToken` is an HMAC of something the client holds in a cookie (the
 * antiforgery cookie on the start page, the session on the consent page), so a post is only
 * accepted with both halves, and the simulator keeps no per-page state. The key lives as long
 * as the simulated world: a reset invalidates every open page.
 */
export class Antiforgery {
  private readonly key = randomBytes(32);

  formToken(purpose: string, binding: string): string {
    return createHmac("sha256", this.key).update(`${purpose}\n${binding}`).digest("base64url");
  }

  check(purpose: string, binding: string | undefined, token: string | undefined): boolean {
    if (binding === undefined || binding === "" || token === undefined) {
      return false;
    }
    const expected = Buffer.from(this.formToken(purpose, binding));
    const given = Buffer.from(token);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
