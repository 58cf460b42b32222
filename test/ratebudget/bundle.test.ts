import { readFileSync } from "node:fs";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";

/**
 * exact-token-broker/rate-budget ships to consumers: it may bring the DynamoDB client and the
 * client library's own modules, and nothing of the broker's engine; the client barrel stays
 * without DynamoDB (test/client/bundle.test.ts), which is why the budget has an entry of its own.
 */
describe("the rate-budget entry in a consumer's bundle", () => {
  it("contains the DynamoDB client and none of the broker's engine, crypto, logging, handlers or zod", async () => {
    const { metafile } = await build({
      entryPoints: ["lib/ratebudget/index.ts"],
      bundle: true,
      minify: true,
      platform: "node",
      format: "esm",
      target: "node20",
      write: false,
      metafile: true,
      logLevel: "silent",
    });

    const inputs = Object.keys(metafile.inputs);
    expect(inputs.some((path) => path.includes("@aws-sdk/client-dynamodb"))).toBe(true);
    const ours = inputs.filter((path) => path.startsWith("lib/"));
    expect(ours.filter((path) => !/^lib\/(ratebudget|client)\/|^lib\/errors\.ts$/.test(path))).toEqual([]);
    const heavy = inputs.filter((path) =>
      /node_modules\/(zod|@aws-crypto|@aws-lambda-powertools|@middy|@aws-sdk\/client-lambda)\//.test(path),
    );
    expect(heavy).toEqual([]);
  });

  it("is the package's ./rate-budget export", () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as {
      exports: Record<string, { types: string; default: string }>;
    };

    expect(pkg.exports["./rate-budget"]).toEqual({
      types: "./dist/lib/ratebudget/index.d.ts",
      default: "./dist/lib/ratebudget/index.js",
    });
  });
});
