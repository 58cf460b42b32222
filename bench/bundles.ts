/**
 * The Lambda bundles, built exactly as the stack builds them (lib/infra/bundling.ts), with their
 * size and the time a fresh Node process takes to import each: the part of a cold start the
 * bundle controls. `tsx bench/bundles.ts` prints the table on its own.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type BuiltBundle, buildBundles, topInputs } from "../lib/infra/build-bundles.js";
import { FUNCTION_NODE_OPTIONS, type FunctionName } from "../lib/infra/bundling.js";
import { percentile, table } from "./stats.js";

/** Runs per measurement; the median is reported. */
const RUNS = 7;

/** What a bundle should stay under: its size, and for token-vend its import time over bare Node. */
export interface BundleTarget {
  readonly bytes: number;
  /** Compared with the median import time minus bare Node's, source maps on as deployed. */
  readonly importNetMs?: number;
}

/**
 * Issue 12's targets ("Cold start"). A minified bundle of the DynamoDB client alone imports in
 * about 125-130 ms over bare Node on this machine kind, so token-vend's other code must fit in
 * about 50 ms.
 */
export const BUNDLE_TARGETS: Readonly<Partial<Record<FunctionName, BundleTarget>>> = {
  "token-vend": { bytes: 700_000, importNetMs: 180 },
  refresh: { bytes: 800_000 },
};

/** A bundle without a target of its own has its largest inputs listed once it passes this size. */
const LIST_INPUTS_OVER_BYTES = 1_000_000;

export interface BundleReportRow {
  readonly name: FunctionName;
  /** Size of index.mjs (the source map beside it is not loaded unless a stack trace needs it). */
  readonly bytes: number;
  /** Median wall time of `node -e "await import(bundle)"`, process start to exit, source maps on as deployed. */
  readonly importMedianMs: number;
  /** The same without `--enable-source-maps`: what the source maps cost at start. */
  readonly importNoSourceMapsMedianMs: number;
  /** What importing the bundle adds: the median, over runs, of each import's time minus a bare `node -e ""` run just before it. */
  readonly importNetMs: number;
  /** Median wall time of a bare `node -e ""`, over every bundle's runs. */
  readonly bareNodeMedianMs: number;
  /** For a bundle over its target (or over 1 MB without one): the packages that take the most bytes. */
  readonly dominatedBy: ReadonlyArray<{ readonly input: string; readonly bytes: number }>;
}

/**
 * What a function's environment holds in AWS, with placeholder values: module init builds its
 * clients and keyring from it without any network call, as on a real cold start.
 */
const LAMBDA_LIKE_ENV: Readonly<Record<string, string>> = {
  AWS_REGION: "eu-west-1",
  AWS_ACCESS_KEY_ID: "bench",
  AWS_SECRET_ACCESS_KEY: "bench",
  TABLE_NAME: "exact-token-broker-bench",
  KMS_KEY_ARN: "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-000000000000",
  EVENT_BUS_NAME: "exact-token-broker-bench",
  FALLBACK_LOGIN_FUNCTION_NAME: "exact-token-broker-fallback-login",
  // token-vend's default, VEND_AUTHORIZATION=perConnection, refuses to start without it (the stack sets it).
  BROKER_SERVER_ID: "exact-token-broker-bench",
  LINK_SIGNING_SECRET_ID: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:link-key-AbCdEf",
  POWERTOOLS_METRICS_NAMESPACE: "ExactTokenBroker",
  // As deployed: source maps on (they cost part of the import).
  NODE_OPTIONS: FUNCTION_NODE_OPTIONS,
  NODE_NO_WARNINGS: "1",
};

function timeNode(code: string, env: Readonly<Record<string, string>> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    execFile(
      process.execPath,
      ["--input-type=module", "-e", code],
      { env: { ...LAMBDA_LIKE_ENV, PATH: process.env.PATH ?? "", ...env }, timeout: 60_000 },
      (error, _stdout, stderr) => {
        if (error) reject(new Error(`node -e failed: ${stderr.slice(0, 500)}`, { cause: error }));
        else resolve(Number(process.hrtime.bigint() - start) / 1e6);
      },
    );
  });
}

async function medianOf(runs: number, measure: () => Promise<number>): Promise<number> {
  const times: number[] = [];
  // One after the other: parallel runs would compete for the CPU and measure each other.
  for (let i = 0; i < runs; i++) times.push(await measure());
  return percentile(times, 50);
}

/** Builds every function's bundle into a temporary directory and measures each. */
export async function bundleReport(): Promise<BundleReportRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "broker-bench-bundles-"));
  try {
    const bundles = await buildBundles(dir);
    // Warm the file cache, so the first measured run does not pay for reading from disk.
    for (const bundle of bundles) await timeNode(importOf(bundle));
    const bareRuns: number[] = [];
    const rows: BundleReportRow[] = [];
    for (const bundle of bundles) {
      // Bare node and the import in pairs, back to back: the median of each pair's difference
      // holds while other work on the machine comes and goes, where one bare median would not.
      const imports: number[] = [];
      const overBare: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const bare = await timeNode("");
        const imported = await timeNode(importOf(bundle));
        bareRuns.push(bare);
        imports.push(imported);
        overBare.push(imported - bare);
      }
      const noMaps = await medianOf(RUNS, () => timeNode(importOf(bundle), { NODE_OPTIONS: "" }));
      rows.push({
        name: bundle.name,
        bytes: bundle.bytes,
        importMedianMs: round(percentile(imports, 50)),
        importNoSourceMapsMedianMs: round(noMaps),
        importNetMs: round(percentile(overBare, 50)),
        bareNodeMedianMs: 0,
        dominatedBy:
          bundle.bytes > (BUNDLE_TARGETS[bundle.name]?.bytes ?? LIST_INPUTS_OVER_BYTES)
            ? topInputs(bundle, 5)
            : [],
      });
    }
    const bareNodeMedianMs = round(percentile(bareRuns, 50));
    return rows.map((row) => ({ ...row, bareNodeMedianMs }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function importOf(bundle: BuiltBundle): string {
  return `await import(${JSON.stringify(pathToFileURL(bundle.file).href)});`;
}

const round = (ms: number): number => Math.round(ms);
/** Thousands of bytes, as the targets are stated. */
const kb = (bytes: number): string => `${Math.round(bytes / 1000)} KB`;

/** Each target, met or missed, for the bundles that have one. */
function targetLines(rows: readonly BundleReportRow[]): string[] {
  const lines: string[] = [];
  for (const row of rows) {
    const target = BUNDLE_TARGETS[row.name];
    if (!target) continue;
    const verdict = (met: boolean) => (met ? "met" : "MISSED");
    const parts = [
      `${row.bytes} bytes, target under ${kb(target.bytes)}: ${verdict(row.bytes < target.bytes)}`,
    ];
    if (target.importNetMs !== undefined) {
      parts.push(
        `${row.importNetMs} ms over bare node, target under ${target.importNetMs} ms: ` +
          verdict(row.importNetMs < target.importNetMs),
      );
    }
    lines.push(`   ${row.name}: ${parts.join("; ")}`);
  }
  return lines;
}

/** The report as a table, the targets, and what dominates each bundle over its target. */
export function formatBundleReport(rows: readonly BundleReportRow[]): string {
  const targets = Object.entries(BUNDLE_TARGETS).map(
    ([name, target]) =>
      `${name} under ${kb(target.bytes)}` +
      (target.importNetMs !== undefined ? ` and ${target.importNetMs} ms to import over bare node` : ""),
  );
  const lines = [
    table(
      [
        "bundle",
        "bytes",
        "import ms (median)",
        "minus bare node ms",
        "bare node ms",
        "without source maps ms",
      ],
      rows.map((r) => [
        r.name,
        r.bytes,
        r.importMedianMs,
        r.importNetMs,
        r.bareNodeMedianMs,
        r.importNoSourceMapsMedianMs,
      ]),
    ),
    `   targets: ${targets.join("; ")}; ${RUNS} runs each, NODE_OPTIONS=${FUNCTION_NODE_OPTIONS} as deployed`,
    ...targetLines(rows),
  ];
  for (const row of rows) {
    if (row.dominatedBy.length === 0) continue;
    const limit = BUNDLE_TARGETS[row.name]?.bytes ?? LIST_INPUTS_OVER_BYTES;
    lines.push(
      `   ${row.name} is over ${kb(limit)}; largest inputs: ` +
        row.dominatedBy.map((d) => `${d.input} ${kb(d.bytes)}`).join(", "),
    );
  }
  return lines.join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${formatBundleReport(await bundleReport())}\n`);
}
