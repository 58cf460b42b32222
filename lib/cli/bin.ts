#!/usr/bin/env node
import { runCli } from "./main.js";

process.exit(
  await runCli(process.argv.slice(2), {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    env: process.env,
  }),
);
