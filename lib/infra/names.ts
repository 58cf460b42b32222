/**
 * Names the deployed broker and its operators agree on. No CDK imports here: the CLI may import
 * this file to name a connection's secret.
 */

/**
 * A connection's secrets live in Secrets Manager under three name prefixes, so that IAM can give
 * each function exactly the ones it needs (lib/secrets/secret-layout.ts has the rules):
 *
 * - {@link CLIENT_SECRET_PREFIX}: the OAuth client secret alone, read by every function (each
 *   makes token calls);
 * - {@link LOGIN_SECRET_PREFIX}: the Exact user's name, password and TOTP secret, read by
 *   fallback-login only (and the operator's CLI);
 * - {@link COMBINED_SECRET_PREFIX}: the layout before the split, one secret holding both; read only
 *   by a stack deployed with `combinedSecrets` during the move (README, "Trust boundary").
 */
export const CLIENT_SECRET_PREFIX = "exact-token-broker/client-secrets/";
/** See {@link CLIENT_SECRET_PREFIX}. */
export const LOGIN_SECRET_PREFIX = "exact-token-broker/logins/";
/** See {@link CLIENT_SECRET_PREFIX}. */
export const COMBINED_SECRET_PREFIX = "exact-token-broker/connections/";

/** The CloudWatch namespace the handlers' Powertools metrics use (lib/handlers/*). */
export const METRICS_NAMESPACE = "ExactTokenBroker";

/** A connection's client-secret name by default, what `connection add` records as its secret ID. */
export function clientSecretName(connectionId: string): string {
  return `${CLIENT_SECRET_PREFIX}${connectionId}`;
}

/** A connection's login-credentials name: its Exact user's, so one per connection. */
export function loginSecretName(connectionId: string): string {
  return `${LOGIN_SECRET_PREFIX}${connectionId}`;
}
