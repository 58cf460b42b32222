import { LambdaFunctionUrlSchema } from "@aws-lambda-powertools/parser/schemas";
import type { LambdaFunctionUrlEvent } from "@aws-lambda-powertools/parser/types";
import type { Context } from "aws-lambda";
import { afterEach, describe, expect, it } from "vitest";
import { type FunctionUrlServer, startFunctionUrlServer } from "../../lib/local/function-url-server.js";

describe("startFunctionUrlServer", () => {
  let server: FunctionUrlServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("turns a request into a Function URL event that passes Powertools' schema", async () => {
    let seen: { event: LambdaFunctionUrlEvent; context: Context } | undefined;
    server = await startFunctionUrlServer(async (event, context) => {
      seen = { event, context };
      return { statusCode: 204 };
    });

    const res = await fetch(`${server.url}/callback?a=1&a=2&b=x%21y`, {
      headers: { cookie: "one=1; two=2", "x-custom": "yes" },
    });

    expect(res.status).toBe(204);
    const event = seen?.event;
    expect(LambdaFunctionUrlSchema.safeParse(event).success).toBe(true);
    expect(event).toMatchObject({
      version: "2.0",
      rawPath: "/callback",
      rawQueryString: "a=1&a=2&b=x%21y",
      queryStringParameters: { a: "1,2", b: "x!y" },
      cookies: ["one=1", "two=2"],
      isBase64Encoded: false,
      requestContext: { http: { method: "GET", path: "/callback", sourceIp: "127.0.0.1" } },
    });
    expect(event?.headers).toMatchObject({
      host: new URL(server.url).host,
      "x-forwarded-proto": "http",
      "x-custom": "yes",
    });
    expect(event?.headers.cookie).toBeUndefined();
    expect(seen?.context.getRemainingTimeInMillis()).toBeGreaterThan(0);
  });

  it("writes a structured answer back: status, headers, cookies and body", async () => {
    server = await startFunctionUrlServer(async () => ({
      statusCode: 302,
      headers: { Location: "https://start.exactonline.nl/", "Content-Type": "text/html; charset=utf-8" },
      cookies: ["a=1; HttpOnly"],
      body: "<p>moved</p>",
    }));

    const res = await fetch(`${server.url}/start`, { redirect: "manual" });

    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("https://start.exactonline.nl/");
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("set-cookie")).toBe("a=1; HttpOnly");
    expect(await res.text()).toBe("<p>moved</p>");
  });

  it("writes each entry of the result's cookies array as its own set-cookie header", async () => {
    server = await startFunctionUrlServer(async () => ({
      statusCode: 200,
      cookies: ["__Host-a=1; Path=/; Secure; HttpOnly; SameSite=Lax", "b=2; Max-Age=0"],
      body: "",
    }));

    const res = await fetch(server.url);

    expect(res.headers.getSetCookie()).toEqual([
      "__Host-a=1; Path=/; Secure; HttpOnly; SameSite=Lax",
      "b=2; Max-Age=0",
    ]);
  });

  it("answers HEAD with the headers a GET would have and no body", async () => {
    const methods: string[] = [];
    server = await startFunctionUrlServer(async (event) => {
      methods.push(event.requestContext.http.method);
      return { statusCode: 200, headers: { "X-Page": "confirm" }, body: "<p>page</p>" };
    });

    const res = await fetch(server.url, { method: "HEAD" });

    expect(methods).toEqual(["HEAD"]);
    expect(res.headers.get("x-page")).toBe("confirm");
    expect(await res.text()).toBe("");
  });

  it("answers a result without statusCode as a 200 JSON body, like a Function URL", async () => {
    server = await startFunctionUrlServer(async () => ({ ok: true }));

    const res = await fetch(server.url);

    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({ ok: true });
  });

  it("answers 502 when the handler throws", async () => {
    server = await startFunctionUrlServer(async () => {
      throw new Error("boom");
    });

    const res = await fetch(server.url);

    expect(res.status).toBe(502);
    expect(await res.text()).not.toContain("boom");
  });

  it("passes binary and form bodies base64-encoded and text or JSON bodies as text, as a Function URL does", async () => {
    const bodies: Array<{ body?: string; isBase64Encoded: boolean }> = [];
    server = await startFunctionUrlServer(async (event) => {
      bodies.push({ body: event.body, isBase64Encoded: event.isBase64Encoded });
      return { statusCode: 200 };
    });

    await fetch(server.url, { method: "POST", body: new Uint8Array([0, 1, 2]) });
    await fetch(server.url, {
      method: "POST",
      body: "a=1",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    await fetch(server.url, { method: "POST", body: "a=1", headers: { "content-type": "text/plain" } });
    await fetch(server.url, {
      method: "POST",
      body: '{"a":1}',
      headers: { "content-type": "application/json" },
    });

    expect(bodies).toEqual([
      { body: "AAEC", isBase64Encoded: true },
      { body: Buffer.from("a=1").toString("base64"), isBase64Encoded: true },
      { body: "a=1", isBase64Encoded: false },
      { body: '{"a":1}', isBase64Encoded: false },
    ]);
  });
});
