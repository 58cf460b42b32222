import { me, meUnauthorized } from "./exact-answers.js";
import type { PreparedRequest } from "./exact-pipeline.js";
import type { Simulation } from "./simulation.js";
import { MeOutcome } from "./stats.js";

function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(authorization ?? "");
  return match?.[1];
}

/**
 * `GET /api/v1/current/Me`: the user behind a valid access token. Missing, unknown and expired
 * tokens all get the same 401. With `oldAccessTokenValidAfterRefresh` off, only the newest
 * access token of the (client, user) pair is accepted, which revokes the older ones on every
 * refresh and on a new authorization.
 */
export function prepareMeRequest(sim: Simulation, authorization: string | undefined): PreparedRequest<"me"> {
  const token = bearerToken(authorization);
  const record = sim.state.accessToken(token);
  return {
    endpoint: "me",
    clientId: record?.pair.clientId,
    user: record?.pair.user,
    process() {
      const valid =
        record !== undefined &&
        sim.clock.nowMs() < record.expiresAtMs &&
        (sim.variants.oldAccessTokenValidAfterRefresh || record.pair.newestAccessToken === token);
      return valid
        ? { answer: me(record.pair.user), outcome: MeOutcome.ok }
        : { answer: meUnauthorized(), outcome: MeOutcome.unauthorized };
    },
  };
}
