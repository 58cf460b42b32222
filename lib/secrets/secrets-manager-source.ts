import { SecretsProvider } from "@aws-lambda-powertools/parameters/secrets";
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SecretUnavailable } from "../errors.js";
import { parseSecretJson } from "./connection-secret.js";
import { createLayoutSource } from "./secret-layout.js";
import type { SecretSource } from "./secret-source.js";

/**
 * Five minutes: a cold start plus a few warm minutes cost one GetSecretValue, and a rotated
 * client secret or fixed password is picked up soon enough (or at once with `forceFetch`).
 */
export const DEFAULT_SECRET_MAX_AGE_SECONDS = 300;

/** Injected I/O for {@link createSecretsManagerSource}. */
export interface SecretsManagerSourceDeps {
  /** @default one client and cache created at module scope, shared by warm invocations */
  client?: SecretsManagerClient | undefined;
  /** @default {@link DEFAULT_SECRET_MAX_AGE_SECONDS} */
  maxAgeSeconds?: number | undefined;
}

let sharedProvider: SecretsProvider | undefined;

/**
 * Reads connection secrets from Secrets Manager through Powertools Parameters, which caches
 * each value for `maxAgeSeconds`, in either layout (secret-layout.ts). The raw string is cached
 * and parsed per call, which costs microseconds and keeps the JSON error handling ours:
 * Powertools' JSON transform would put the parser's message, which quotes the secret, into its
 * error. A secret that does not exist is not cached (Powertools caches values only): a legacy
 * connection's login reads ask for a login secret first, but logins are rare and force a fetch.
 */
export function createSecretsManagerSource(deps: SecretsManagerSourceDeps = {}): SecretSource {
  const provider = deps.client ? new SecretsProvider({ awsSdkV3Client: deps.client }) : defaultProvider();
  const maxAge = deps.maxAgeSeconds ?? DEFAULT_SECRET_MAX_AGE_SECONDS;

  return createLayoutSource(async (secretId, options) => {
    let raw: string | Uint8Array | undefined;
    try {
      raw = await provider.get(secretId, { maxAge, forceFetch: options.forceFetch ?? false });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw new SecretUnavailable(`Secret ${secretId} could not be read from Secrets Manager`, {
        cause: error,
      });
    }
    if (raw === undefined) {
      throw new SecretUnavailable(`Secret ${secretId} has no value in Secrets Manager`);
    }
    const text = typeof raw === "string" ? raw : Buffer.from(raw).toString("utf8");
    return parseSecretJson(text, secretId);
  }, "Secrets Manager");
}

function defaultProvider(): SecretsProvider {
  sharedProvider ??= new SecretsProvider();
  return sharedProvider;
}

/** Powertools wraps the SDK error in a GetParameterError; the SDK's name is on its cause. */
function isNotFound(error: unknown): boolean {
  for (let current = error, hops = 0; current instanceof Error && hops < 5; hops++) {
    if (current.name === "ResourceNotFoundException" || current.name === "ParameterNotFoundError")
      return true;
    current = current.cause;
  }
  return false;
}
