import { getSecret, SecretsProvider } from "@aws-lambda-powertools/parameters/secrets";
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { ConfigurationError } from "../errors.js";
import { registerSecret } from "../log/redactor.js";
import { readSecretsFile } from "../secrets/file-secret-source.js";

/**
 * A link key shorter than this is refused: HMAC-SHA256 wants at least 256 bits of key, and the
 * CDK stack generates a random string of 32+ printable characters.
 */
export const MIN_LINK_KEY_LENGTH = 32;

/**
 * Fifteen minutes, as long as a link lives: a rotated key is picked up before any link signed
 * with the new one could reach a container still holding the old one for long.
 */
export const DEFAULT_LINK_KEY_MAX_AGE_SECONDS = 900;

/** Where the HMAC key that signs connect links and OAuth states comes from. */
export interface LinkKeySource {
  /**
   * The key bytes.
   * @throws ConfigurationError when the secret is missing, unreadable or too short (the message
   *   names the secret ID, never a value).
   */
  get(): Promise<Buffer>;
}

/** Environment read by {@link createLinkKeySource}. */
export interface LinkKeyEnv {
  /** Secret ID of the link-signing key: a Secrets Manager secret whose SecretString is the key. */
  LINK_SIGNING_SECRET_ID?: string;
  /** Locally: a JSON file in which `LINK_SIGNING_SECRET_ID` maps to the key as a plain string. */
  LOCAL_SECRETS_FILE?: string;
}

/** Injected I/O for {@link createLinkKeySource}. */
export interface LinkKeySourceDeps {
  /** @default Powertools' shared `getSecret` provider (module scope, reused by warm invocations) */
  secretsManagerClient?: SecretsManagerClient;
  /** @default {@link DEFAULT_LINK_KEY_MAX_AGE_SECONDS} */
  maxAgeSeconds?: number;
}

/**
 * A file source when `LOCAL_SECRETS_FILE` is set, Secrets Manager (Powertools Parameters,
 * cached) otherwise. Both need `LINK_SIGNING_SECRET_ID`.
 *
 * @throws ConfigurationError when `LINK_SIGNING_SECRET_ID` is not set, at start rather than at
 *   the first link.
 */
export function createLinkKeySource(env: LinkKeyEnv, deps: LinkKeySourceDeps = {}): LinkKeySource {
  const secretId = env.LINK_SIGNING_SECRET_ID?.trim();
  if (!secretId) {
    throw new ConfigurationError(
      "LINK_SIGNING_SECRET_ID must name the secret that holds the connect-link signing key",
    );
  }
  const file = env.LOCAL_SECRETS_FILE?.trim();
  const read = file ? () => readFromFile(file, secretId) : secretsManagerReader(secretId, deps);
  return {
    async get() {
      return toKey(await read(), secretId);
    },
  };
}

function secretsManagerReader(secretId: string, deps: LinkKeySourceDeps): () => Promise<string> {
  const maxAge = deps.maxAgeSeconds ?? DEFAULT_LINK_KEY_MAX_AGE_SECONDS;
  const provider = deps.secretsManagerClient
    ? new SecretsProvider({ awsSdkV3Client: deps.secretsManagerClient })
    : undefined;
  return async () => {
    let raw: string | Uint8Array | undefined;
    try {
      raw = provider ? await provider.get(secretId, { maxAge }) : await getSecret(secretId, { maxAge });
    } catch (error) {
      throw new ConfigurationError(`link-signing secret ${secretId} could not be read from Secrets Manager`, {
        cause: error,
      });
    }
    if (raw === undefined) throw new ConfigurationError(`link-signing secret ${secretId} has no value`);
    return typeof raw === "string" ? raw : Buffer.from(raw).toString("utf8");
  };
}

async function readFromFile(path: string, secretId: string): Promise<string> {
  const secrets = await readSecretsFile(path);
  const value = Object.hasOwn(secrets, secretId) ? secrets[secretId] : undefined;
  if (value === undefined) {
    throw new ConfigurationError(`link-signing secret ${secretId} was not found in LOCAL_SECRETS_FILE`);
  }
  if (typeof value !== "string") {
    throw new ConfigurationError(`link-signing secret ${secretId} in LOCAL_SECRETS_FILE must be a string`);
  }
  return value;
}

function toKey(value: string, secretId: string): Buffer {
  if (value.length < MIN_LINK_KEY_LENGTH) {
    throw new ConfigurationError(
      `link-signing secret ${secretId} must be at least ${MIN_LINK_KEY_LENGTH} characters long`,
    );
  }
  registerSecret(value);
  return Buffer.from(value, "utf8");
}
