#!/usr/bin/env node
import { runCli } from "./main.js";
import { terminalPrompt } from "./secret-input.js";

const prompt = terminalPrompt();
process.exit(
  await runCli(process.argv.slice(2), {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    env: process.env,
    ...(prompt ? { prompt } : {}),
  }),
);
