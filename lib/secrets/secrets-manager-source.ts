import { SecretsProvider } from "@aws-lambda-powertools/parameters/secrets";
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SecretUnavailable } from "../errors.js";
import { parseSecretJson } from "./connection-secret.js";
import { createLayoutSource } from "./secret-layout.js";
import type { SecretSource } from "./secret-source.js";

/**
 * Fifteen minutes (it was five). Where Exact answers, a stale client secret costs one call: one
 * Exact refuses (`invalid_client`) is read again at once, bypassing and refilling the cache,
 * before the one retry (token-protocol.ts, code-exchange.ts); logins always read their
 * credentials afresh (login-protocol.ts).
 *
 * What bounds the age is an app Exact has rejected: its chains make no call while their cached
 * secret is the rejected one (outage-pacing.ts, the rejection's hold), so nothing invalidates
 * that cache, and an operator's fixed secret is seen only once it expires or at the rejection
 * probe. Fifteen minutes is that probe's interval (REJECTION_PROBE_MS, app-states.ts): a fix
 * is picked up as soon as the README promises. A longer age needs the hold to re-read the
 * secret first.
 *
 * What it saves (issue 12): connections of one app share its client secret, so a container
 * reads each app's secret 4 times an hour instead of 12, whatever the number of connections:
 * cents a month. A longer age would save little more: a per-connection secret is seldom found
 * again in the container that read it (the queue spreads a chain's refreshes over the workers,
 * ~10 minutes apart), so it costs about one read per refresh at any age; sharing the app's
 * secret is what cuts that.
 */
export const DEFAULT_SECRET_MAX_AGE_SECONDS = 900;

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
 *
 * The provider and its Secrets Manager client are built at the first read, which only a token
 * call or a login needs, not when the function starts: a vend served from the table does not pay
 * for them (issue 12).
 */
export function createSecretsManagerSource(deps: SecretsManagerSourceDeps = {}): SecretSource {
  const { client } = deps;
  let ownProvider: SecretsProvider | undefined;
  const provider = (): SecretsProvider => {
    if (client) {
      ownProvider ??= new SecretsProvider({ awsSdkV3Client: client });
      return ownProvider;
    }
    sharedProvider ??= new SecretsProvider();
    return sharedProvider;
  };
  const maxAge = deps.maxAgeSeconds ?? DEFAULT_SECRET_MAX_AGE_SECONDS;

  return createLayoutSource(async (secretId, options) => {
    let raw: string | Uint8Array | undefined;
    try {
      raw = await provider().get(secretId, { maxAge, forceFetch: options.forceFetch ?? false });
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

/** Powertools wraps the SDK error in a GetParameterError; the SDK's name is on its cause. */
function isNotFound(error: unknown): boolean {
  for (let current = error, hops = 0; current instanceof Error && hops < 5; hops++) {
    if (current.name === "ResourceNotFoundException" || current.name === "ParameterNotFoundError")
      return true;
    current = current.cause;
  }
  return false;
}
