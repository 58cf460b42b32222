import type { Simulation } from "./simulation.js";
import type { AccessTokenRecord } from "./state.js";

/** An `Authorization: Bearer …` header as far as the simulator can place it. */
export interface Bearer {
  token: string | undefined;
  /** Set for any access token ever issued, expired and revoked ones included. */
  record: AccessTokenRecord | undefined;
}

export function readBearer(sim: Simulation, authorization: string | undefined): Bearer {
  const token = /^Bearer +(\S+) *$/i.exec(authorization ?? "")?.[1];
  return { token, record: sim.state.accessToken(token) };
}

/**
 * Whether the REST API accepts the token now: issued, not expired at sim time, not revoked early
 * (`accessTokenRevokedAfterSeconds`) and, with `oldAccessTokenValidAfterRefresh` off, the newest
 * access token of its (client, user) pair (every refresh and new authorization then revokes the
 * older ones).
 */
export function acceptsBearer(
  sim: Simulation,
  bearer: Bearer,
): bearer is Bearer & { record: AccessTokenRecord } {
  const { token, record } = bearer;
  const revokedAfterMs = sim.variants.accessTokenRevokedAfterSeconds * 1000;
  const nowMs = sim.clock.nowMs();
  return (
    record !== undefined &&
    nowMs < record.expiresAtMs &&
    (revokedAfterMs === 0 || nowMs < record.issuedAtMs + revokedAfterMs) &&
    (sim.variants.oldAccessTokenValidAfterRefresh || record.pair.newestAccessToken === token)
  );
}
