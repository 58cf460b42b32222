import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createBrokerApp } from "../../lib/infra/broker-app.js";
import type { BrokerStackProps } from "../../lib/infra/broker-stack.js";
import { PythonTool, requirePythonTool } from "../support/python-tools.js";
import { describeWithCfnLint } from "../support/tool-gate.js";

/**
 * cfn-lint on the templates `cdk synth` writes: CloudFormation's own resource schemas catch what
 * CDK assertions and cdk-nag do not (a property CloudFormation would refuse at deploy time).
 * Gated (tool-gate.ts): skipped with one line at the end of the run when cfn-lint is missing,
 * required with CI=true.
 */

/** Regions linted: us-east-1 (the README's cost estimate) and eu-west-1 (near Exact's customers). */
const REGIONS = ["us-east-1", "eu-west-1"];
/**
 * cfn-lint's exit status is a bit set (cfnlint/runner/cli.py, `_exit`): 2 errors, 4 warnings,
 * 8 informational; 1 means it could not lint (bad arguments, unreadable template).
 */
const EXIT_NOT_LINTED = 1;
const EXIT_ERRORS = 2;

/** The stack as `cdk synth` builds it, and with every optional part that adds resources switched. */
const VARIANTS: Record<string, BrokerStackProps> = {
  default: {},
  options: { alarmEmail: "ops@example.com", reserveConcurrency: false, deletionProtection: false },
};

interface LintMatch {
  readonly Filename: string;
  readonly Level: "Error" | "Warning" | "Informational";
  readonly Message: string;
  readonly Rule: { readonly Id: string };
  readonly Location: { readonly Path: ReadonlyArray<string | number> };
}

let scratch: string;

/** Synthesizes one variant into its own cloud assembly under `scratch`; returns the template's path. */
function synthesize(name: string, stackProps: BrokerStackProps): string {
  const outdir = join(scratch, name);
  // cdk.json's context too, as `cdk synth` passes it (partition literals, …). Bundling is skipped:
  // it changes only the functions' S3 keys, which cfn-lint does not resolve.
  const cdkJson = JSON.parse(readFileSync("cdk.json", "utf8")) as { context: Record<string, unknown> };
  const { app, stack } = createBrokerApp({
    app: { outdir, context: { ...cdkJson.context, "aws:cdk:bundling-stacks": [] } },
    stack: stackProps,
  });
  app.synth();
  return join(outdir, stack.templateFile);
}

describeWithCfnLint("cfn-lint on the synthesized templates", () => {
  let status: number | null;
  let matches: LintMatch[];
  let output: string;

  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), "broker-cfn-lint-"));
    const templates = Object.entries(VARIANTS).map(([name, props]) => synthesize(name, props));
    const run = spawnSync(
      requirePythonTool(PythonTool.CfnLint),
      ["--format", "json", "--regions", ...REGIONS, "--", ...templates],
      { encoding: "utf8", timeout: 120_000 },
    );
    if (run.error) throw run.error;
    status = run.status;
    output = `${run.stdout}\n${run.stderr}`.trim();
    matches = status === EXIT_NOT_LINTED ? [] : (JSON.parse(run.stdout) as LintMatch[]);
  }, 180_000);

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it("lints both templates (exit status is a set of finding bits, not 1 or a signal)", () => {
    expect(status, output).not.toBeNull();
    expect((status ?? EXIT_NOT_LINTED) & EXIT_NOT_LINTED, output).toBe(0);
  });

  it("finds no errors: exit status bit 2 clear (warnings and informational findings allowed)", () => {
    const errors = matches
      .filter((match) => match.Level === "Error")
      .map((match) => `${match.Rule.Id} ${match.Location.Path.join("/")}: ${match.Message}`);

    expect({ errorBit: (status ?? 0) & EXIT_ERRORS, errors }).toEqual({ errorBit: 0, errors: [] });
  });
});
