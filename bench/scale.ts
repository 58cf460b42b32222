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
import { parseScaleArgs } from "./scale/model.js";
import { report } from "./scale/report.js";
import { runScale } from "./scale/run-scale.js";

const options = parseScaleArgs(process.argv.slice(2));
const result = await runScale(options);
process.stdout.write(`${report(result)}\n`);
