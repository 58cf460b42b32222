import { readFile } from "node:fs/promises";
import { ConfigurationError } from "../errors.js";
import { createLayoutSource } from "./secret-layout.js";
import type { SecretSource } from "./secret-source.js";

/**
 * Reads secrets from a local JSON file: `{ "<secretId>": { "clientSecret": "…", … } }`, in either
 * layout (secret-layout.ts): a login secret is the entry named `exact-token-broker/logins/<secretId>`.
 *
 * The file is read on every call, without a cache: local runs make a handful of calls a
 * minute, and an edited file takes effect at once, which is what someone editing it expects.
 * Entries are validated one at a time, so one broken entry does not hide the others.
 */
export function createFileSecretSource(path: string): SecretSource {
  return createLayoutSource(async (secretId) => {
    const secrets = await readSecretsFile(path);
    return Object.hasOwn(secrets, secretId) ? secrets[secretId] : undefined;
  }, "LOCAL_SECRETS_FILE");
}

/** The whole local secrets file, checked to be a JSON object; shared with the link-key source. */
export async function readSecretsFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigurationError(`LOCAL_SECRETS_FILE ${path} cannot be read`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // No cause: the parser's message quotes the file's content.
    throw new ConfigurationError(`LOCAL_SECRETS_FILE ${path} is not valid JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigurationError(`LOCAL_SECRETS_FILE ${path} must hold a JSON object keyed by secret ID`);
  }
  return parsed as Record<string, unknown>;
}
