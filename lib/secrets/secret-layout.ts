import { SecretUnavailable } from "../errors.js";
import { CLIENT_SECRET_PREFIX, COMBINED_SECRET_PREFIX, loginSecretName } from "../infra/names.js";
import {
  type LoginCredentials,
  loginCredentialsOf,
  toConnectionSecret,
  toLoginCredentials,
} from "./connection-secret.js";
import type { SecretGetOptions, SecretSource } from "./secret-source.js";

/*
 * ─── Where a connection's secrets live ──────────────────────────────────────────────────────
 *
 * The client secret belongs to the Exact app, the login credentials to the connection's Exact
 * user, so they live apart: a connection records where its client secret is (`secretId`; several
 * connections of one app may share it), and its login credentials are named after the connection.
 *
 *   split (written by `connection add` and `connection set-secret`):
 *     exact-token-broker/client-secrets/acme   {"clientSecret"}                       every function
 *     exact-token-broker/logins/acme           {"username","password","totpSecret"}   fallback-login
 *
 *   combined (before the split; read while a connection still names it):
 *     exact-token-broker/connections/acme      {"clientSecret","username","password","totpSecret"}
 *
 * Token calls read `secretId` and take `clientSecret` from whichever layout it holds. Logins read
 * the connection's login secret, and only when there is none, the login fields of `secretId` (a
 * combined secret). IAM grants whole secrets, not fields: a function allowed to read a combined
 * secret for its client secret can read the password in it too. So the functions that make token
 * calls read combined secrets only in a stack deployed with `combinedSecrets`
 * (lib/infra/broker-secrets.ts), while connections are being moved (README, "Trust boundary").
 */

/** Which connection's secrets: its ID (which names its login secret) and its client secret's ID. */
export interface SecretOwner {
  readonly connectionId: string;
  readonly secretId: string;
}

/**
 * Where `connection set-secret` puts a connection's client secret: a combined secret's name
 * moves under the client-secret prefix (`exact-token-broker/connections/acme` →
 * `exact-token-broker/client-secrets/acme`), so that functions without `combinedSecrets` can read
 * it; any other ID stays (a local file has no IAM, so it is split in place).
 */
export function splitSecretIdFor(secretId: string): string {
  return secretId.startsWith(COMBINED_SECRET_PREFIX)
    ? `${CLIENT_SECRET_PREFIX}${secretId.slice(COMBINED_SECRET_PREFIX.length)}`
    : secretId;
}

/**
 * Reads one stored secret's parsed JSON value; undefined when no secret has that ID.
 * @throws SecretUnavailable when it exists but cannot be read or is not JSON
 * @throws ConfigurationError when the store itself is broken (a local file)
 */
export type SecretReader = (secretId: string, options: SecretGetOptions) => Promise<unknown>;

/**
 * The layout's reading rules over a store of secrets (Secrets Manager, a local file).
 * @param where the store's name for messages, e.g. "Secrets Manager"
 */
export function createLayoutSource(read: SecretReader, where: string): SecretSource {
  const required = async (secretId: string, options: SecretGetOptions): Promise<unknown> => {
    const value = await read(secretId, options);
    if (value === undefined) throw new SecretUnavailable(`Secret ${secretId} was not found in ${where}`);
    return value;
  };
  return {
    async clientSecret(secretId, options = {}) {
      return toConnectionSecret(await required(secretId, options), secretId).clientSecret;
    },
    async loginCredentials({ connectionId, secretId }, options = {}): Promise<LoginCredentials | undefined> {
      const loginId = loginSecretName(connectionId);
      const login = await read(loginId, options);
      if (login !== undefined) return toLoginCredentials(login, loginId);
      return loginCredentialsOf(toConnectionSecret(await required(secretId, options), secretId));
    },
  };
}
