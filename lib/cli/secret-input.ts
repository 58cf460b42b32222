import { readFile } from "node:fs/promises";
import { BrokerError, ValidationError } from "../errors.js";
import { type ConnectionSecret, parseSecretJson, toConnectionSecret } from "../secrets/connection-secret.js";

/** Asks one question; `hidden` answers are not echoed (passwords, TOTP secrets). */
export type Prompt = (question: string, options: { readonly hidden: boolean }) => Promise<string>;

const LOGIN_FIELDS = ["username", "password", "totpSecret"] as const;

/**
 * A connection secret from a JSON file (`{"clientSecret","username","password","totpSecret"}`)
 * or from prompts. Never from a command-line argument: those end up in shell history and in `ps`
 * output. The login fields come all three or not at all: a partial set could only fail at the
 * first heal.
 *
 * @throws ValidationError for an unreadable file, a value of the wrong shape or a partial login,
 *   naming the file and fields, never a value
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
    return checked(() => toConnectionSecret(parseSecretJson(text, secretId), secretId), source.file);
  }
  if (!source.prompt) throw new ValidationError("--prompt-secret needs an interactive terminal");
  const ask = source.prompt;
  const clientSecret = await ask("Exact app client secret: ", { hidden: true });
  const username = await ask(
    "Exact user name for the fallback login (empty: none, or keep the stored ones): ",
    {
      hidden: false,
    },
  );
  const password = username ? await ask("Exact password: ", { hidden: true }) : "";
  const totpSecret = username
    ? await ask("TOTP secret (base32, from the authenticator setup): ", { hidden: true })
    : "";
  return checked(
    () =>
      toConnectionSecret(
        {
          clientSecret,
          ...(username ? { username, password, totpSecret: totpSecret.replace(/\s+/g, "") } : {}),
        },
        secretId,
      ),
    "--prompt-secret",
  );
}

/** The secret `read` returns, refused as bad input when its shape is wrong or its login partial. */
function checked(read: () => ConnectionSecret, source: string): ConnectionSecret {
  let secret: ConnectionSecret;
  try {
    secret = read();
  } catch (error) {
    // SecretUnavailable means "cannot read what is stored"; here the operator's input is wrong.
    if (error instanceof BrokerError) throw new ValidationError(`${source}: ${error.message}`);
    throw error;
  }
  const missing = LOGIN_FIELDS.filter((field) => !secret[field]);
  if (missing.length > 0 && missing.length < LOGIN_FIELDS.length) {
    throw new ValidationError(
      `${source}: username, password and totpSecret go together (the fallback login needs all three); missing: ${missing.join(", ")}`,
    );
  }
  return secret;
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
