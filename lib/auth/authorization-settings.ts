import { ConfigurationError } from "../errors.js";
import { REGION_PATTERN } from "./caller-identity.js";

/**
 * How token-vend decides who gets which connection (VEND_AUTHORIZATION; the stack's
 * `vendAuthorization` setting).
 */
export const VendAuthorization = {
  /**
   * The default: a caller proves its AWS identity (a signed sts:GetCallerIdentity request in
   * `callerIdentity`) and gets only the connections granted to it; anything else is AccessDenied.
   */
  PerConnection: "perConnection",
  /**
   * Before issue 10, for a migration period: whoever may invoke token-vend gets every connection.
   * A caller that sends `callerIdentity` is still verified and checked, and a vend that
   * perConnection would refuse is logged and counted (metric `WouldDeny`), but served.
   */
  StackWide: "stackWide",
} as const;
export type VendAuthorization = (typeof VendAuthorization)[keyof typeof VendAuthorization];

export interface AuthorizationSettings {
  readonly mode: VendAuthorization;
  /** BROKER_SERVER_ID: the value consumers sign into the X-Exact-Broker-Server-ID header. */
  readonly serverId?: string;
  /** AWS_REGION: where token-vend verifies callers (STS's regional endpoint). */
  readonly region?: string;
}

/** A header value: printable ASCII without spaces, short enough for any header limit. */
const SERVER_ID_PATTERN = /^[\x21-\x7e]{1,256}$/;

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads VEND_AUTHORIZATION (default perConnection), BROKER_SERVER_ID and AWS_REGION. Whether
 * perConnection has what it needs is checked where vends are served (VendAuthorizer.assertReady,
 * when token-vend starts): the other functions never authorize a vend.
 *
 * @throws ConfigurationError for a value that is set but invalid
 */
export function loadAuthorizationSettings(env: Env): AuthorizationSettings {
  const rawMode = env.VEND_AUTHORIZATION ?? "";
  const modes: readonly string[] = Object.values(VendAuthorization);
  if (rawMode !== "" && !modes.includes(rawMode)) {
    throw new ConfigurationError(`VEND_AUTHORIZATION must be one of ${modes.join(", ")}, got "${rawMode}"`);
  }
  const serverId = env.BROKER_SERVER_ID ?? "";
  if (serverId !== "" && !SERVER_ID_PATTERN.test(serverId)) {
    throw new ConfigurationError("BROKER_SERVER_ID must be 1-256 printable ASCII characters without spaces");
  }
  const region = env.AWS_REGION ?? "";
  if (region !== "" && !REGION_PATTERN.test(region)) {
    throw new ConfigurationError(`AWS_REGION must be an AWS region name such as eu-west-1, got "${region}"`);
  }
  return {
    mode: rawMode === "" ? VendAuthorization.PerConnection : (rawMode as VendAuthorization),
    ...(serverId ? { serverId } : {}),
    ...(region ? { region } : {}),
  };
}
