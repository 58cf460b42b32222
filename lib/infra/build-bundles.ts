import { statSync } from "node:fs";
import { join } from "node:path";
import { build, type Metafile } from "esbuild";
import { BUNDLE, esbuildOptions, FUNCTION_NAMES, type FunctionName } from "./bundling.js";

/** One function's bundle, built the way the stack builds it. */
export interface BuiltBundle {
  readonly name: FunctionName;
  /** `<outDir>/<name>/index.mjs`: what Lambda loads. */
  readonly file: string;
  /** Size of `index.mjs` (the source map is shipped beside it but not loaded). */
  readonly bytes: number;
  readonly metafile: Metafile;
}

/** Builds one bundle into `<outDir>/<name>/` with esbuild's JS API and the stack's settings. */
export async function buildBundle(name: FunctionName, outDir: string): Promise<BuiltBundle> {
  const dir = join(outDir, name);
  const result = await build({ ...esbuildOptions(name, dir), metafile: true });
  const file = join(dir, BUNDLE.outFile);
  return { name, file, bytes: statSync(file).size, metafile: result.metafile };
}

/** Builds the given bundles (all five by default) concurrently. */
export async function buildBundles(
  outDir: string,
  names: readonly FunctionName[] = FUNCTION_NAMES,
): Promise<BuiltBundle[]> {
  return Promise.all(names.map((name) => buildBundle(name, outDir)));
}

/**
 * Bytes a bundle spends per package (or per source folder), largest first. A package's
 * `locales` folders are counted apart: message translations are the usual dead weight.
 */
export function topInputs(
  bundle: BuiltBundle,
  limit = 10,
): Array<{ readonly input: string; readonly bytes: number }> {
  const output = Object.values(bundle.metafile.outputs).find((out) => out.entryPoint !== undefined);
  const byInput = new Map<string, number>();
  for (const [path, input] of Object.entries(output?.inputs ?? {})) {
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1];
    const base = pkg ?? path.split("/").slice(0, 2).join("/");
    const key = pkg && path.includes("/locales/") ? `${base} (locales)` : base;
    byInput.set(key, (byInput.get(key) ?? 0) + input.bytesInOutput);
  }
  return [...byInput]
    .map(([input, bytes]) => ({ input, bytes }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, limit);
}
