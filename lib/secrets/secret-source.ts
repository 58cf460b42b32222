import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { ConnectionSecret } from "./connection-secret.js";
import { createFileSecretSource } from "./file-secret-source.js";
import { createSecretsManagerSource } from "./secrets-manager-source.js";

/** Options for one {@link SecretSource.get} call. */
export interface SecretGetOptions {
  /**
   * Skip the cache, e.g. after Exact refused the cached password, so an operator's fix is
   * picked up at once instead of after the cache age.
   */
  forceFetch?: boolean;
}

/** Where connection secrets come from: Secrets Manager in AWS, a JSON file locally. */
export interface SecretSource {
  /**
   * Reads and validates one connection secret.
   * @throws SecretUnavailable when it does not exist or does not have the documented shape
   *   (the message names the secret ID and field, never a value).
   * @throws ConfigurationError when the local secrets file itself is missing or broken.
   */
  get(secretId: string, options?: SecretGetOptions): Promise<ConnectionSecret>;
}

/** Environment read by {@link createSecretSource}. */
export interface SecretSourceEnv {
  /** Path of a JSON file mapping secret ID → connection secret; set for local runs only. */
  LOCAL_SECRETS_FILE?: string;
}

/** Injected I/O for {@link createSecretSource}. */
export interface SecretSourceDeps {
  /** @default one client created at module scope, shared by warm invocations */
  secretsManagerClient?: SecretsManagerClient;
  /** How long a fetched secret is reused. @default 300 */
  maxAgeSeconds?: number;
}

/**
 * A file source when `LOCAL_SECRETS_FILE` is set, Secrets Manager (through Powertools
 * Parameters, cached) otherwise.
 */
export function createSecretSource(env: SecretSourceEnv, deps: SecretSourceDeps = {}): SecretSource {
  const file = env.LOCAL_SECRETS_FILE?.trim();
  if (file) return createFileSecretSource(file);
  return createSecretsManagerSource({ client: deps.secretsManagerClient, maxAgeSeconds: deps.maxAgeSeconds });
}
