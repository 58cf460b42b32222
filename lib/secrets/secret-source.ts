import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { LoginCredentials } from "./connection-secret.js";
import { createFileSecretSource } from "./file-secret-source.js";
import type { SecretOwner } from "./secret-layout.js";
import { createSecretsManagerSource } from "./secrets-manager-source.js";

/** Options for one {@link SecretSource} read. */
export interface SecretGetOptions {
  /**
   * Skip the cache, e.g. after Exact refused the cached password, so an operator's fix is
   * picked up at once instead of after the cache age.
   */
  forceFetch?: boolean;
}

/**
 * Where a connection's secrets come from: Secrets Manager in AWS, a JSON file locally. Each door
 * reads only what it needs (secret-layout.ts): a token call its client secret, a login its login
 * credentials, so only fallback-login's role needs to read passwords.
 */
export interface SecretSource {
  /**
   * The OAuth client secret stored at `secretId` (a client secret, or a combined secret).
   * @throws SecretUnavailable when it does not exist or does not have the documented shape
   *   (the message names the secret ID and field, never a value).
   * @throws ConfigurationError when the local secrets file itself is missing or broken.
   */
  clientSecret(secretId: string, options?: SecretGetOptions): Promise<string>;
  /**
   * A connection's login credentials: its login secret (`exact-token-broker/logins/<connection
   * ID>`), or, when there is none, the login fields of a combined secret at its `secretId`.
   * Undefined when neither holds all three.
   * @throws SecretUnavailable when neither secret exists, or one read has the wrong shape.
   * @throws ConfigurationError when the local secrets file itself is missing or broken.
   */
  loginCredentials(owner: SecretOwner, options?: SecretGetOptions): Promise<LoginCredentials | undefined>;
}

/** Environment read by {@link createSecretSource}. */
export interface SecretSourceEnv {
  /** Path of a JSON file mapping secret ID → secret value; set for local runs only. */
  LOCAL_SECRETS_FILE?: string;
}

/** Injected I/O for {@link createSecretSource}. */
export interface SecretSourceDeps {
  /** @default one client created at module scope, shared by warm invocations */
  secretsManagerClient?: SecretsManagerClient;
  /** How long a fetched secret is reused. @default 900 (DEFAULT_SECRET_MAX_AGE_SECONDS) */
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
