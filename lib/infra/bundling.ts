import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BundlingOptions, LogLevel, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import type { BuildOptions } from "esbuild";
import { BrokerFunction } from "../config-timing.js";

/**
 * How the broker's functions are bundled, in ONE place: the stack (NodejsFunction, which runs the
 * esbuild CLI), the bundle tests and the benchmark (esbuild's JS API) all derive their options
 * from {@link BUNDLE}, so what is tested and measured is what is deployed. test/infra checks that
 * both paths produce byte-identical bundles.
 */

/**
 * The four Lambda functions, named after their entry files in functions/: the engine's own list
 * (BROKER_FUNCTION), so the stack cannot deploy a function the engine does not know.
 */
export const FunctionName = BrokerFunction;
export type FunctionName = BrokerFunction;

export const FUNCTION_NAMES: readonly FunctionName[] = Object.values(FunctionName);

/**
 * ESM bundles of CommonJS dependencies (parts of the AWS SDK, the Encryption SDK) still call
 * `require` for Node built-ins; an ES module has none, so the bundle gets one first.
 */
export const ESM_REQUIRE_SHIM =
  "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";

/** The settings both bundling paths share. */
export const BUNDLE = {
  /** Lambda runs Node 22/24, the tests here run Node 20: code must run on both (toolchain notes). */
  target: "node20",
  minify: true,
  sourceMap: true,
  /**
   * Maps without the sources: stack traces need only the mappings. The map shrinks from ~5 MB to
   * ~2 MB, and Node parses it at load when source maps are enabled: ~70 ms instead of ~110 ms.
   */
  sourcesContent: false,
  /**
   * Prefer packages' ES builds: the AWS SDK's `module` builds tree-shake far better than its
   * CommonJS ones (token-vend: 1.38 MB instead of 1.7 MB, and half the import time).
   */
  mainFields: ["module", "main"],
  /**
   * Nothing external: the bundle carries the exact AWS SDK version the tests ran against, not
   * whichever one the Lambda runtime ships this month.
   */
  externalModules: [] as string[],
  /**
   * Packages replaced by a stand-in, as paths relative to the project root (absolute paths are
   * passed to esbuild). asn1.js serves only the Encryption SDK's ECDSA signatures, which the
   * broker's suite never makes or checks (lib/crypto/asn1-unsupported.ts): 67 KB less per
   * bundle. bn.js serves the Encryption SDK's 64-bit frame lengths and EC point compression:
   * Node's BigInt does that in lib/crypto/bn-bigint.ts, 45 KB less per bundle that seals. (Node's
   * own streams cannot stand in for readable-stream: the SDK calls `pipeline` without a callback,
   * which readable-stream 3 allows and Node 20 refuses.) The SDK's default credential chain is
   * the part of it that applies in Lambda (lib/aws/lambda-credential-provider.ts): 116 KB less
   * per bundle, without the profile, SSO and process providers and their nested clients.
   */
  alias: {
    "asn1.js": "lib/crypto/asn1-unsupported.ts",
    "bn.js": "lib/crypto/bn-bigint.ts",
    "@aws-sdk/credential-provider-node": "lib/aws/lambda-credential-provider.ts",
  } as Readonly<Record<string, string>>,
  banner: ESM_REQUIRE_SHIM,
  /** NodejsFunction names the file `index.mjs` for ESM; the local builds use the same name. */
  outFile: "index.mjs",
} as const;

function findProjectRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "functions"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no project root (package.json and functions/) above ${start}`);
  }
}

/**
 * The functions' NODE_OPTIONS: stack traces through the source maps, so an InternalError's log
 * line points at lib/…/*.ts instead of column 80 000 of a minified line. It costs ~70 ms of cold
 * start (the benchmark measures imports with it).
 */
export const FUNCTION_NODE_OPTIONS = "--enable-source-maps";

/** The repository root: holds package.json, the lock file and functions/. */
export const PROJECT_ROOT = findProjectRoot(dirname(fileURLToPath(import.meta.url)));

/**
 * NodejsFunction's project root and lock file. In this repository: its root and
 * package-lock.json. Installed in a team's app (`exact-token-broker/cdk`) the package has no lock
 * file (npm never publishes one): NodejsFunction then takes the app's own lock file, found
 * upwards from the working directory, and its directory as the project root, which holds
 * node_modules/exact-token-broker/functions too.
 */
export function projectFiles(root = PROJECT_ROOT): { projectRoot?: string; depsLockFilePath?: string } {
  const lockFile = join(root, "package-lock.json");
  return existsSync(lockFile) ? { projectRoot: root, depsLockFilePath: lockFile } : {};
}

/**
 * {@link BUNDLE}'s aliases with absolute targets: installed in a team's app, NodejsFunction runs
 * esbuild from the app's root, not from this package's.
 */
function aliases(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(BUNDLE.alias).map(([name, target]) => [name, join(PROJECT_ROOT, target)]),
  );
}

/** Absolute path of a function's entry file. */
export function entryPoint(name: FunctionName): string {
  return join(PROJECT_ROOT, "functions", `${name}.ts`);
}

/**
 * NodejsFunction's bundling: the project's own esbuild, never Docker (none exists where this
 * is built, and `cdk synth` must work offline).
 */
export function cdkBundling(): BundlingOptions {
  return {
    forceDockerBundling: false,
    format: OutputFormat.ESM,
    target: BUNDLE.target,
    minify: BUNDLE.minify,
    sourceMap: BUNDLE.sourceMap,
    sourcesContent: BUNDLE.sourcesContent,
    mainFields: [...BUNDLE.mainFields],
    externalModules: [...BUNDLE.externalModules],
    banner: BUNDLE.banner,
    // NodejsFunction has no alias option; esbuild's CLI takes `--alias:name=path`.
    esbuildArgs: { "--alias": Object.entries(aliases()).map(([name, target]) => `${name}=${target}`) },
    // Warnings and errors only: no size table per asset in every synth.
    logLevel: LogLevel.WARNING,
  };
}

/**
 * The same bundle through esbuild's JS API, for tests and the benchmark. `outdir/index.mjs`
 * mirrors the asset NodejsFunction builds, down to the source-map comment.
 */
export function esbuildOptions(name: FunctionName, outdir: string): BuildOptions {
  return {
    entryPoints: [entryPoint(name)],
    outfile: join(outdir, BUNDLE.outFile),
    absWorkingDir: PROJECT_ROOT,
    bundle: true,
    platform: "node",
    format: "esm",
    target: BUNDLE.target,
    minify: BUNDLE.minify,
    sourcemap: BUNDLE.sourceMap,
    sourcesContent: BUNDLE.sourcesContent,
    mainFields: [...BUNDLE.mainFields],
    external: [...BUNDLE.externalModules],
    alias: aliases(),
    banner: { js: BUNDLE.banner },
    logLevel: "warning",
  };
}
