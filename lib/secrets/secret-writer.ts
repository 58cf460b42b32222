import { readFile, writeFile } from "node:fs/promises";
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { loginSecretName } from "../infra/names.js";
import { type ConnectionSecret, loginCredentialsOf, toConnectionSecret } from "./connection-secret.js";
import { readSecretsFile } from "./file-secret-source.js";
import type { SecretOwner } from "./secret-layout.js";

/** What one secret of a connection holds in the split layout (secret-layout.ts). */
export const SecretPart = { ClientSecret: "client secret", LoginCredentials: "login credentials" } as const;
export type SecretPart = (typeof SecretPart)[keyof typeof SecretPart];

/** One secret written: its ID, what it holds, and whether it was created or replaced. */
export interface SecretWrite {
  readonly secretId: string;
  readonly holds: SecretPart;
  readonly created: boolean;
}

/**
 * Writes a connection's secrets in the split layout (`connection add --secret-file/--prompt-secret`,
 * `connection set-secret`).
 */
export interface SecretWriter {
  /**
   * Writes the login credentials, when the secret has them, to the connection's login secret
   * (`exact-token-broker/logins/<connection ID>`), then the client secret alone to its
   * `secretId`. In that order: when `secretId` held a combined secret, the login credentials are
   * in their own secret before they leave the combined one, so a login in between finds them
   * either way. Without login credentials an existing login secret is left as it is (rotating a
   * client secret does not need the password again).
   * @returns the secrets written, in the order written
   * @throws SecretUnavailable when the client secret is empty, naming the field, never a value
   */
  put(owner: SecretOwner, secret: ConnectionSecret): Promise<SecretWrite[]>;
}

/** Creates or replaces one secret's value; true when it was created. */
type PutValue = (secretId: string, value: object, holds: SecretPart) => Promise<boolean>;

function splitWriter(putValue: PutValue): SecretWriter {
  return {
    async put({ connectionId, secretId }, secret) {
      const { clientSecret } = toConnectionSecret(secret, secretId);
      const writes: SecretWrite[] = [];
      const login = loginCredentialsOf(secret);
      if (login) {
        const loginId = loginSecretName(connectionId);
        const holds = SecretPart.LoginCredentials;
        writes.push({ secretId: loginId, holds, created: await putValue(loginId, login, holds) });
      }
      const holds = SecretPart.ClientSecret;
      writes.push({ secretId, holds, created: await putValue(secretId, { clientSecret }, holds) });
      return writes;
    },
  };
}

/** Locally: the LOCAL_SECRETS_FILE, rewritten with owner-only permissions after each secret. */
export function createFileSecretWriter(path: string): SecretWriter {
  return splitWriter(async (secretId, value) => {
    const all: Record<string, unknown> = await readSecretsFile(path).catch(async (error: unknown) => {
      // A file that does not exist yet starts empty; anything else is a real problem.
      if ((await readFile(path).catch(() => undefined)) === undefined) return {};
      throw error;
    });
    const created = !Object.hasOwn(all, secretId);
    all[secretId] = value;
    await writeFile(path, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 });
    return created;
  });
}

const DESCRIPTIONS: Record<SecretPart, string> = {
  [SecretPart.ClientSecret]:
    "exact-token-broker: an Exact app's OAuth client secret (read by every function)",
  [SecretPart.LoginCredentials]:
    "exact-token-broker: an Exact user's name, password and TOTP secret (read by fallback-login only)",
};

/** In AWS: CreateSecret, or PutSecretValue when it already exists. */
export function createSecretsManagerWriter(
  client: SecretsManagerClient = new SecretsManagerClient({}),
): SecretWriter {
  return splitWriter(async (secretId, value, holds) => {
    const SecretString = JSON.stringify(value);
    try {
      await client.send(
        new CreateSecretCommand({ Name: secretId, SecretString, Description: DESCRIPTIONS[holds] }),
      );
      return true;
    } catch (error) {
      if (!(error instanceof ResourceExistsException)) throw error;
      await client.send(new PutSecretValueCommand({ SecretId: secretId, SecretString }));
      return false;
    }
  });
}
