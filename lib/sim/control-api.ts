import { ValidationError } from "../errors.js";
import type { Answer, RequestBody } from "./http.js";
import type { Simulation } from "./simulation.js";

type Route = (sim: Simulation, body: () => unknown) => Answer;

function ok(body: unknown, status = 200): Answer {
  return { status, body };
}

function nowBody(nowMs: number): { now: string } {
  return { now: new Date(nowMs).toISOString() };
}

/** The operator's and the tests' handle on the simulation; see lib/sim/README.md. */
const ROUTES = new Map<string, Route>(
  Object.entries({
    "POST /_sim/apps": (sim, body) => ok(sim.addApp(body()), 201),
    "POST /_sim/users": (sim, body) => ok(sim.addUser(body()), 201),
    "POST /_sim/authorize": (sim, body) => ok({ code: sim.authorize(body()) }),
    "POST /_sim/refresh-token-age": (sim, body) =>
      ok({ expiresAt: new Date(sim.setRefreshTokenAge(body())).toISOString() }),
    "GET /_sim/clock": (sim) => ok(nowBody(sim.clock.nowMs())),
    "POST /_sim/clock": (sim, body) => ok(nowBody(sim.advanceClockBy(body()))),
    "GET /_sim/variants": (sim) => ok(sim.variants),
    "POST /_sim/variants": (sim, body) => ok(sim.setVariants(body())),
    "GET /_sim/faults": (sim) => ok({ faults: sim.listFaults() }),
    "POST /_sim/faults": (sim, body) => ok({ id: sim.addFault(body()) }, 201),
    "DELETE /_sim/faults": (sim) => ok({ removed: sim.clearFaults() }),
    "GET /_sim/scripts": (sim) => ok({ scripts: sim.listScripts() }),
    "POST /_sim/scripts": (sim, body) => ok({ id: sim.addScript(body()) }, 201),
    "DELETE /_sim/scripts": (sim) => ok({ removed: sim.clearScripts() }),
    "GET /_sim/stats": (sim) => ok(sim.statsView()),
    "POST /_sim/reset": (sim) => {
      sim.reset();
      return ok({ reset: true });
    },
  } satisfies Record<string, Route>),
);

/** Routes with a path parameter: `POST /_sim/users/{username}/divisions` (the name URL-encoded). */
const USER_DIVISIONS_PATH = /^\/_sim\/users\/([^/]+)\/divisions$/;

function userDivisionsRoute(method: string, path: string): Route | undefined {
  const encoded = method === "POST" ? USER_DIVISIONS_PATH.exec(path)?.[1] : undefined;
  if (encoded === undefined) return undefined;
  return (sim, body) => {
    let username: string;
    try {
      username = decodeURIComponent(encoded);
    } catch (error) {
      throw new ValidationError("the user name in the path is not URL-encoded correctly", { cause: error });
    }
    return ok(sim.setUserDivisions(username, body()));
  };
}

function parseJson(body: RequestBody): unknown {
  if (body.tooLarge) {
    throw new ValidationError("body is too large");
  }
  const text = body.bytes.toString("utf8");
  if (text.trim() === "") {
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ValidationError("body is not valid JSON", { cause: error });
  }
}

/**
 * Answers a request under `/_sim/`. Bodies are read as JSON whatever the Content-Type, so that
 * `curl -d '{…}'` works without a header. Bad input is a 400 `bad_request` with a message; an
 * unknown method and path is a 404.
 */
export function handleControlRequest(
  sim: Simulation,
  method: string,
  path: string,
  body: RequestBody,
): Answer {
  const route = ROUTES.get(`${method} ${path}`) ?? userDivisionsRoute(method, path);
  if (route === undefined) {
    return { status: 404, body: { error: "not_found" } };
  }
  try {
    return route(sim, () => parseJson(body));
  } catch (error) {
    if (error instanceof ValidationError) {
      return { status: 400, body: { error: "bad_request", message: error.message } };
    }
    throw error;
  }
}
