/**
 * `npm run bench:scale` (issue 12): the refresh design at scale. 10,000 connections in dynalite,
 * the simulator on a discrete-event clock with modelled latencies, the schedule dispatching due
 * chains to an in-process SQS model and a worker of bounded concurrency, sampled vends; a hot
 * phase, then an idle one whose refresh tokens are aged over 0–30 days so keep-alives show.
 *
 * Flags: --connections N (10000), --hot-minutes N (20), --idle-days N (3), --batch-size N (10),
 * --max-concurrency N (10), --batching-window S (3), --pollers N (5), --burst-share X (0.02),
 * --burst-vends N (5), --seed N (1), --quiet,
 * --token-style short|long (long: Exact's token sizes), --dynamo-child-process (dynalite in a
 * process of its own; slower here under load).
 * Progress goes to stderr; the tables and, last, the `scale:` line to stdout.
 */
import { execFileSync } from "node:child_process";
import { parseScaleArgs } from "./scale/model.js";
import { report } from "./scale/report.js";
import { runScale } from "./scale/run-scale.js";

/** The commit measured, so a table copied into the README says what it measured. */
function measuredCommit(): string {
  try {
    const git = (...args: string[]) => execFileSync("git", args, { encoding: "utf8" }).trim();
    const dirty = git("status", "--porcelain", "--untracked-files=no") !== "";
    return `${git("rev-parse", "--short", "HEAD")}${dirty ? " with uncommitted changes" : ""}`;
  } catch {
    return "unknown (not a git checkout)";
  }
}

const options = parseScaleArgs(process.argv.slice(2));
const commit = measuredCommit();
const result = await runScale(options);
process.stdout.write(`commit: ${commit}\n${report(result)}\n`);
