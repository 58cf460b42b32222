import { acceptsBearer, readBearer } from "./bearer.js";
import { me, unauthorized } from "./exact-answers.js";
import type { PreparedRequest } from "./exact-pipeline.js";
import type { Simulation } from "./simulation.js";
import { MeOutcome } from "./stats.js";

/**
 * `GET /api/v1/current/Me`: the user behind a valid access token. Missing, unknown, expired and
 * revoked tokens all get the same 401 (see `acceptsBearer`).
 */
export function prepareMeRequest(sim: Simulation, authorization: string | undefined): PreparedRequest<"me"> {
  const bearer = readBearer(sim, authorization);
  return {
    endpoint: "me",
    clientId: bearer.record?.pair.clientId,
    user: bearer.record?.pair.user,
    process() {
      return acceptsBearer(sim, bearer)
        ? { answer: me(bearer.record.pair.user), outcome: MeOutcome.ok }
        : { answer: unauthorized(), outcome: MeOutcome.unauthorized };
    },
  };
}
