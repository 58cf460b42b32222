import { readFile, writeFile } from "node:fs/promises";
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { type ConnectionSecret, toConnectionSecret } from "./connection-secret.js";
import { readSecretsFile } from "./file-secret-source.js";

/** Creates or replaces a connection's secret (the CLI's `connection add --secret-file/--prompt-secret`). */
export interface SecretWriter {
  /** Returns whether the secret was created (true) or replaced (false). */
  put(secretId: string, secret: ConnectionSecret): Promise<boolean>;
}

/** Locally: the LOCAL_SECRETS_FILE, rewritten with owner-only permissions. */
export function createFileSecretWriter(path: string): SecretWriter {
  return {
    async put(secretId, secret) {
      const all: Record<string, unknown> = await readSecretsFile(path).catch(async (error: unknown) => {
        // A file that does not exist yet starts empty; anything else is a real problem.
        if ((await readFile(path).catch(() => undefined)) === undefined) return {};
        throw error;
      });
      const created = !Object.hasOwn(all, secretId);
      all[secretId] = toConnectionSecret(secret, secretId);
      await writeFile(path, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 });
      return created;
    },
  };
}

/** In AWS: CreateSecret, or PutSecretValue when it already exists. */
export function createSecretsManagerWriter(
  client: SecretsManagerClient = new SecretsManagerClient({}),
): SecretWriter {
  return {
    async put(secretId, secret) {
      const SecretString = JSON.stringify(toConnectionSecret(secret, secretId));
      try {
        await client.send(
          new CreateSecretCommand({
            Name: secretId,
            SecretString,
            Description: "exact-token-broker connection: client secret, user name, password, TOTP secret",
          }),
        );
        return true;
      } catch (error) {
        if (!(error instanceof ResourceExistsException)) throw error;
        await client.send(new PutSecretValueCommand({ SecretId: secretId, SecretString }));
        return false;
      }
    },
  };
}
