import type { ChainStore } from "../chain/chain-store.js";
import { ConnectionNotFound, SecretUnavailable } from "../errors.js";
import {
  type ConnectionSecret,
  type LoginCredentials,
  loginCredentialsOf,
} from "../secrets/connection-secret.js";
import { type SecretOwner, splitSecretIdFor } from "../secrets/secret-layout.js";
import type { SecretSource } from "../secrets/secret-source.js";
import type { SecretWrite, SecretWriter } from "../secrets/secret-writer.js";
import { ExitCode } from "./exit-codes.js";

interface Io {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

/** One line per secret written, naming the secret and what it holds, never a value. */
export function describeWrites(writes: readonly SecretWrite[]): string[] {
  return writes.map((w) => `${w.created ? "created" : "updated"} secret ${w.secretId} (${w.holds})`);
}

/**
 * `exact-broker connection set-secret --id X [--secret-file F | --prompt-secret]`: stores a
 * connection's secret in the split layout (lib/secrets/secret-layout.ts), without downtime: the
 * values given, or with neither flag the ones it holds now (the move from a combined secret).
 * Login credentials not given are kept: rotating a client secret does not need the password.
 *
 * Writes both secrets (login first, see SecretWriter.put), and only then points the connection
 * at its client secret's new name (a combined secret's moves under the client-secret prefix),
 * with a write conditional on the secret ID it read. Every function reads both layouts, so a
 * vend, refresh or login at any step finds what it needs. Running it again changes nothing.
 *
 * A combined secret is left for the operator to delete: functions keep a secret they read for up
 * to 15 minutes (DEFAULT_SECRET_MAX_AGE_SECONDS), and one that read the connection just before
 * it moved may still ask for it.
 *
 * @param readGiven reads the operator's values for the secret ID (readSecretInput), or undefined
 *   to store the current ones again
 */
export async function setSecret(
  deps: { readonly store: ChainStore; readonly source: SecretSource; readonly writer: SecretWriter },
  connectionId: string,
  readGiven: ((secretId: string) => Promise<ConnectionSecret>) | undefined,
  io: Io,
): Promise<number> {
  const { store, source, writer } = deps;
  const record = await store.get(connectionId);
  if (!record) throw new ConnectionNotFound(`connection "${connectionId}" does not exist`);
  const from = record.secretId;
  const to = splitSecretIdFor(from);
  const given = await readGiven?.(to);
  const clientSecret = given?.clientSecret ?? (await source.clientSecret(from, { forceFetch: true }));
  const login =
    (given && loginCredentialsOf(given)) ??
    (await currentLogin(source, { connectionId, secretId: from }, given !== undefined));
  const writes = await writer.put({ connectionId, secretId: to }, { clientSecret, ...login });
  for (const line of describeWrites(writes)) io.out(line);
  if (!login) {
    io.out(
      `connection "${connectionId}" has no login credentials: fallback-login cannot heal it by itself ` +
        `(add them with: exact-broker connection set-secret --id ${connectionId} --prompt-secret)`,
    );
  }
  if (to === from) return ExitCode.Done;
  if (!(await store.setSecretId(connectionId, from, to))) {
    io.err(
      `connection "${connectionId}" was removed or pointed at another secret meanwhile, so it does not read ${to}; ` +
        `check it with: exact-broker status --id ${connectionId}`,
    );
    return ExitCode.TryLater;
  }
  io.out(`connection "${connectionId}" now reads its client secret from ${to} (was ${from})`);
  io.out(
    "next: in 15 minutes (functions keep a secret they read that long), delete the combined secret: " +
      `aws secretsmanager delete-secret --secret-id ${from}`,
  );
  return ExitCode.Done;
}

/**
 * The login credentials the connection holds now, fetched (not cached): they must outlive a
 * combined secret. When the operator gave new values, a current secret that cannot be read is
 * what they are replacing, so it holds none worth keeping.
 */
async function currentLogin(
  source: SecretSource,
  owner: SecretOwner,
  replacing: boolean,
): Promise<LoginCredentials | undefined> {
  try {
    return await source.loginCredentials(owner, { forceFetch: true });
  } catch (error) {
    if (replacing && error instanceof SecretUnavailable) return undefined;
    throw error;
  }
}
