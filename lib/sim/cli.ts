/**
 * `npm run sim -- [options]`: runs the Exact Online simulator until SIGINT or SIGTERM.
 * Prints exactly one line on start (scripts wait for it and read the URL from it); bad
 * options print a message and exit 2.
 */
import { ValidationError } from "../errors.js";
import { parseCliArgs, USAGE } from "./cli-args.js";
import { startSimulator } from "./server.js";

const EXIT_USAGE = 2;

async function main(): Promise<void> {
  let options: ReturnType<typeof parseCliArgs>;
  let simulator: Awaited<ReturnType<typeof startSimulator>>;
  try {
    options = parseCliArgs(process.argv.slice(2));
    if (options === "help") {
      console.log(USAGE);
      return;
    }
    simulator = await startSimulator(options);
  } catch (error) {
    if (error instanceof ValidationError) {
      console.error(`exact-online simulator: ${error.message}\n\n${USAGE}`);
      process.exitCode = EXIT_USAGE;
      return;
    }
    throw error;
  }
  console.log(`Exact Online simulator listening on ${simulator.url}`);
  const stop = (): void => {
    simulator.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((error: unknown) => {
  console.error("exact-online simulator: failed to start:", error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
