/**
 * Names the deployed broker and its operators agree on. No CDK imports here: the CLI may import
 * this file to name a connection's secret.
 */

/**
 * Every connection's secret (client secret, user, password, TOTP secret) lives under this name
 * prefix in Secrets Manager, e.g. `exact-token-broker/connections/acme`. The functions may read
 * secrets under it and nothing else, so a connection pointed at any other secret fails closed.
 */
export const CONNECTION_SECRET_PREFIX = "exact-token-broker/connections/";

/** The CloudWatch namespace the handlers' Powertools metrics use (lib/handlers/*). */
export const METRICS_NAMESPACE = "ExactTokenBroker";

/** A connection's secret name under {@link CONNECTION_SECRET_PREFIX}. */
export function connectionSecretName(connectionId: string): string {
  return `${CONNECTION_SECRET_PREFIX}${connectionId}`;
}
