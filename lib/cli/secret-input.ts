import { readFile } from "node:fs/promises";
import { ValidationError } from "../errors.js";
import { type ConnectionSecret, parseSecretJson, toConnectionSecret } from "../secrets/connection-secret.js";

/** Asks one question; `hidden` answers are not echoed (passwords, TOTP secrets). */
export type Prompt = (question: string, options: { readonly hidden: boolean }) => Promise<string>;

/**
 * A connection secret from a JSON file or from prompts. Never from a command-line argument: those
 * end up in shell history and in `ps` output.
 */
export async function readSecretInput(
  source: { readonly file?: string; readonly prompt?: Prompt },
  secretId: string,
): Promise<ConnectionSecret> {
  if (source.file) {
    let text: string;
    try {
      text = await readFile(source.file, "utf8");
    } catch (error) {
      throw new ValidationError(`--secret-file ${source.file} cannot be read`, { cause: error });
    }
    return toConnectionSecret(parseSecretJson(text, secretId), secretId);
  }
  if (!source.prompt) throw new ValidationError("--prompt-secret needs an interactive terminal");
  const ask = source.prompt;
  const clientSecret = await ask("Exact app client secret: ", { hidden: true });
  const username = await ask("Exact user name for the fallback login (empty: none): ", { hidden: false });
  const password = username ? await ask("Exact password: ", { hidden: true }) : "";
  const totpSecret = username
    ? await ask("TOTP secret (base32, from the authenticator setup): ", { hidden: true })
    : "";
  return toConnectionSecret(
    { clientSecret, ...(username ? { username, password, totpSecret: totpSecret.replace(/\s+/g, "") } : {}) },
    secretId,
  );
}

/** The terminal prompt: hidden answers are read with echo off. */
export function terminalPrompt(): Prompt | undefined {
  if (!process.stdin.isTTY) return undefined;
  return async (question, { hidden }) => {
    const { createInterface } = await import("node:readline");
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    if (hidden) {
      const mutable = rl as unknown as { _writeToOutput: (text: string) => void };
      mutable._writeToOutput = (text: string) => {
        if (text.includes(question)) process.stderr.write(question);
      };
    }
    try {
      return await new Promise<string>((resolve) => rl.question(question, resolve));
    } finally {
      rl.close();
      if (hidden) process.stderr.write("\n");
    }
  };
}
