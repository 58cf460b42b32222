import type { ConnectionSecret } from "../../lib/secrets/connection-secret.js";
import type { SecretOwner } from "../../lib/secrets/secret-layout.js";
import type { SecretSource } from "../../lib/secrets/secret-source.js";

/**
 * A connection's client secret and login credentials as one value, read through the engine's
 * own source: what a test writes back (changed) with `LocalStack.writeSecret`.
 */
export async function storedSecret(source: SecretSource, owner: SecretOwner): Promise<ConnectionSecret> {
  return {
    clientSecret: await source.clientSecret(owner.secretId),
    ...(await source.loginCredentials(owner)),
  };
}
