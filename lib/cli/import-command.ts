import { open, stat } from "node:fs/promises";
import type { Broker } from "../broker.js";
import { ChainImport } from "../chain/chain-import.js";
import { ValidationError } from "../errors.js";
import { DeadReason } from "../exact/classify-token-response.js";
import { ExitCode } from "./exit-codes.js";

export const IMPORT_USAGE =
  "  exact-broker connection import --id ID --refresh-token-file FILE [--replace]   (FILE - : standard input)";

/** Standard input as the command reads it; `isTTY` tells a terminal from a pipe. */
export type TokenInput = AsyncIterable<string | Buffer> & { readonly isTTY?: boolean };

/** Far more than a refresh token (about 900 characters seen): a larger input is not one. */
const MAX_TOKEN_INPUT_BYTES = 16 * 1024;

/**
 * The refresh token to import, from `file` or, for `-`, standard input: never from the command
 * line (shell history, `ps`) and never asked for (no prompt; a terminal on standard input is
 * refused). Surrounding white space (a final newline) is dropped; what remains must be one word.
 * @throws ValidationError (exit 2) for an unreadable, empty or oversized input, a `FILE` that is no
 *   regular file, or an input that holds more than a token; the message names the input, never
 *   its content, nor `FILE` itself (a token typed where the file name goes would be echoed)
 */
export async function readRefreshToken(file: string, stdin: TokenInput): Promise<string> {
  const source = file === "-" ? "standard input" : "--refresh-token-file";
  let text: string;
  if (file === "-") {
    if (stdin.isTTY) {
      throw new ValidationError(
        "--refresh-token-file -: standard input is a terminal; pipe the token in (… --refresh-token-file - < token.txt): it is never asked for",
      );
    }
    text = await readAll(stdin, source);
  } else {
    text = await readTokenFile(file, source);
  }
  if (Buffer.byteLength(text) > MAX_TOKEN_INPUT_BYTES) throw oversized(source);
  const token = text.trim();
  if (token === "") throw new ValidationError(`${source} is empty: it must hold the refresh token`);
  // Exact's tokens are one word of printable characters (letters, digits, ! + / = and the like).
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new ValidationError(
      `${source} holds more than one word, or characters a refresh token never has: it must hold the refresh token alone`,
    );
  }
  return token;
}

/**
 * The file's text, read only once `stat` shows a regular file of at most MAX_TOKEN_INPUT_BYTES (a
 * device such as /dev/zero never ends; a FIFO blocks), and never more than one byte past it (the
 * file may grow in between). The file system's error is not kept as the `cause`: its message
 * holds the path, which may be the token itself.
 */
async function readTokenFile(file: string, source: string): Promise<string> {
  const unreadable = (error: unknown) => {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    return new ValidationError(`${source} cannot be read${typeof code === "string" ? ` (${code})` : ""}`);
  };
  const info = await stat(file).catch((error: unknown) => {
    throw unreadable(error);
  });
  if (!info.isFile())
    throw new ValidationError(
      `${source} is not a regular file: name a file holding the token, or - for standard input`,
    );
  if (info.size > MAX_TOKEN_INPUT_BYTES) throw oversized(source);
  try {
    const handle = await open(file, "r");
    try {
      const buffer = Buffer.alloc(MAX_TOKEN_INPUT_BYTES + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      return buffer.subarray(0, bytesRead).toString("utf8");
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw unreadable(error);
  }
}

function oversized(source: string): ValidationError {
  return new ValidationError(`${source} holds more than ${MAX_TOKEN_INPUT_BYTES} bytes: not a refresh token`);
}

async function readAll(input: TokenInput, source: string): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of input) {
      const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      chunks.push(buffer);
      bytes += buffer.length;
      // Stop reading an endless input: the size check refuses what was read.
      if (bytes > MAX_TOKEN_INPUT_BYTES) break;
    }
  } catch (error) {
    throw new ValidationError(`${source} cannot be read`, { cause: error });
  }
  return Buffer.concat(chunks).toString("utf8");
}

const DEAD_REASONS: Readonly<Record<string, string>> = {
  [DeadReason.OldToken]: "it was already used: the other system (or someone) refreshed since it was copied",
  [DeadReason.RefreshExpired]: "it passed Exact's 30 days unused",
  [DeadReason.InvalidChain]:
    "Exact does not know it for this app: another app's token, cut off, or superseded",
};

/**
 * `exact-broker connection import`: says what is about to happen before it acts, then imports.
 * Exit codes: 0 imported; 4 refused (connected before without --replace, a dead or unknown token,
 * the user held by another connection); 5 try later (too early, the outcome unknown, Exact down).
 * Never prints the token.
 */
export async function importConnection(
  broker: Broker,
  connectionId: string,
  refreshToken: string,
  replace: boolean,
  io: { readonly out: (line: string) => void; readonly err: (line: string) => void },
): Promise<number> {
  io.out(
    `importing a refresh token into connection "${connectionId}": the broker refreshes it once, now, under the connection's lease. ` +
      "Exact rotates it, and the other system's copy dies at that moment: stop the other system first.",
  );
  const outcome = await new ChainImport(broker.deps).import(connectionId, refreshToken, { replace });
  const status = `exact-broker status --id ${connectionId}`;
  switch (outcome.kind) {
    case "imported": {
      const { result } = outcome;
      if (result.redirectedFrom) {
        io.err(
          `refused: Exact user ${result.exactUserName} is already connected as "${result.connectionId}". ` +
            `The imported chain is that user's only live chain, so it was stored on "${result.connectionId}" (generation ${result.generation}); ` +
            `"${connectionId}" stays as it was. Use "${result.connectionId}", or remove it first if "${connectionId}" should own this user.`,
        );
        return ExitCode.Refused;
      }
      io.out(
        `imported: connection "${connectionId}" holds Exact user ${result.exactUserName}'s chain (division ${result.division ?? "-"}), generation ${result.generation}. ` +
          "The other system's refresh token is dead now: remove it there, and let its consumers vend from the broker.",
      );
      return ExitCode.Done;
    }
    case "holds_chain":
      io.err(
        `refused: connection "${connectionId}" is ${outcome.status} (generation ${outcome.generation}): it was connected before. ` +
          "Nothing was sent. To replace its chain with the imported one, run this again with --replace.",
      );
      return ExitCode.Refused;
    case "token_refused":
      io.err(
        `refused: Exact does not accept this refresh token (${outcome.reason}: ${DEAD_REASONS[outcome.reason] ?? "a dead chain"}). ` +
          `Nothing was changed. Import the other system's current token, or connect with a new consent: exact-broker connect --id ${connectionId}`,
      );
      return ExitCode.Refused;
    case "too_early": {
      const when = `${new Date(outcome.retryAtMs).toISOString()} (in ${Math.max(1, Math.ceil((outcome.retryAtMs - broker.deps.now()) / 1000))} s)`;
      io.err(
        outcome.stored
          ? `too early: Exact refuses a refresh until 570 s after the last one, and the other system refreshed less than that ago; ` +
              `its refusal still carried a new refresh token, which is stored (the other system's copy is dead). ` +
              `The broker refreshes and checks it by itself from ${when}; follow it with: ${status}`
          : `too early: Exact refuses a refresh until 570 s after the last one, and the other system refreshed less than that ago. ` +
              `Nothing was changed. Make sure the other system is stopped, then run this again at ${when}.`,
      );
      return ExitCode.TryLater;
    }
    case "unknown_outcome":
      io.err(
        `outcome unknown: the refresh was sent and no answer came back, so Exact may have rotated the token. ` +
          `The imported token is stored as connection "${connectionId}"'s chain, SUSPECT (generation ${outcome.generation}): ` +
          "the next vend or scheduled refresh spends one probe on it; alive, it is checked and served; dead, the connection goes back to the status it had " +
          `before this import (with --replace, the chain it replaced); without a chain then, it needs a new consent (exact-broker connect --id ${connectionId}). ` +
          `Do not restart the other system. Follow it with: ${status}`,
      );
      return ExitCode.TryLater;
  }
}
