import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build, type Metafile } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as ClientModule from "../../lib/client/index.js";
import { functionError } from "./support.js";

/**
 * A consumer Lambda bundles this library, usually minified (NodejsFunction's `minify: true`
 * renames classes). The client must still name its errors after token-vend's errorTypes, and
 * must not drag the broker's engine into the consumer's bundle.
 */
describe("the client in a consumer's minified bundle", () => {
  let dir: string;
  let metafile: Metafile;
  let client: typeof ClientModule;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "client-bundle-"));
    const outfile = join(dir, "client.mjs");
    const result = await build({
      entryPoints: ["lib/client/index.ts"],
      bundle: true,
      minify: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outfile,
      metafile: true,
      logLevel: "silent",
      banner: {
        js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
    });
    metafile = result.metafile;
    await writeFile(join(dir, "package.json"), '{"type":"module"}');
    client = (await import(pathToFileURL(outfile).href)) as typeof ClientModule;
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("contains the Lambda client and none of the broker's engine, crypto, logging or zod", () => {
    const inputs = Object.keys(metafile.inputs);
    expect(inputs.some((path) => path.includes("@aws-sdk/client-lambda"))).toBe(true);
    const heavy = inputs.filter((path) =>
      /node_modules\/(zod|@aws-crypto|@aws-lambda-powertools|@middy)\/|lib\/(chain|crypto|log|exact)\/.*\.ts$/.test(
        path,
      ),
    );
    expect(heavy).toEqual([]);
  });

  it("reaches the shared rate budget and the DynamoDB client only through the one lazy import", () => {
    // What the bundle evaluates at start: the entry and its static imports, transitively.
    const loaded = new Set<string>();
    const visit = (path: string) => {
      if (loaded.has(path)) return;
      loaded.add(path);
      for (const dep of metafile.inputs[path]?.imports ?? [])
        if (!dep.external && dep.kind !== "dynamic-import") visit(dep.path);
    };
    visit("lib/client/index.ts");
    const lazyImports = Object.entries(metafile.inputs).flatMap(([from, input]) =>
      input.imports
        .filter((dep) => dep.kind === "dynamic-import" && dep.path.startsWith("lib/"))
        .map((dep) => `${from} -> ${dep.path}`),
    );

    expect([...loaded].filter((path) => /@aws-sdk\/client-dynamodb\/|lib\/ratebudget\//.test(path))).toEqual(
      [],
    );
    expect(lazyImports).toEqual(["lib/client/env-rate-budget.ts -> lib/ratebudget/shared-rate-budget.ts"]);
  });

  it.each([
    ["ChainBusy", "busy (retryAfterSeconds=2)"],
    ["ReauthRequired", "run exact-broker connection seed"],
    ["AccessDenied", 'arn:aws:iam::123456789012:user/x has no grant for connection "acme"'],
    ["InternalError", "internal error in the token broker; see its logs (retryAfterSeconds=1)"],
  ])("keeps errorType %s as the error's name", async (errorType, errorMessage) => {
    const lambda = { send: async () => functionError(errorType, errorMessage) };
    const tokens = new client.TokenClient({ lambda: lambda as never, functionName: "TokenVend" });

    const error = await tokens.getAccessToken("acme").then(
      () => new Error("expected a failure"),
      (e: unknown) => e as Error,
    );

    expect(error).toBeInstanceOf(client.BrokerError);
    expect(error.name).toBe(errorType);
  });

  it("keeps the client's own error names", async () => {
    const lambda = { send: async () => Promise.reject(new Error("socket hang up")) };
    const tokens = new client.TokenClient({ lambda: lambda as never, functionName: "TokenVend" });

    const error = await tokens.getAccessToken("acme").then(
      () => new Error("expected a failure"),
      (e: unknown) => e as Error,
    );

    expect(error).toBeInstanceOf(client.TokenVendInvokeError);
    expect(error.name).toBe("TokenVendInvokeError");
  });
});
