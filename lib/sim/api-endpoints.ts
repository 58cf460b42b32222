import { type ApiRow, accountRows, divisionRows, divisionSortKey } from "./api-data.js";
import { acceptsBearer, readBearer } from "./bearer.js";
import { apiBadRequest, apiPage, apiRateLimited, noDivisionAccess, unauthorized } from "./exact-answers.js";
import type { Answer } from "./http.js";
import { scriptedAnswer } from "./scripts.js";
import type { Simulation } from "./simulation.js";
import type { User } from "./state.js";
import { ApiOutcome } from "./stats.js";

/** Exact's REST API pages collections by 60. */
const API_PAGE_SIZE = 60;

/** A collection of the REST API under `/api/v1/{division}/`. */
interface Resource {
  /** As Exact spells it, for `__next` and `__metadata.uri`. */
  path: string;
  type: string;
  rows(user: User, division: number): ApiRow[];
  /** The sort key after which a `$skiptoken` resumes, or undefined when it cannot be read. */
  parseSkiptoken(skiptoken: string): string | undefined;
}

const RESOURCES: Record<string, Resource> = {
  "crm/accounts": {
    path: "crm/Accounts",
    type: "Exact.Web.Api.Models.Account",
    rows: (_user, division) => accountRows(division),
    parseSkiptoken: (skiptoken) =>
      /^guid'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'$/i
        .exec(skiptoken)?.[1]
        ?.toLowerCase(),
  },
  "system/divisions": {
    path: "system/Divisions",
    type: "Exact.Web.Api.System.Division",
    rows: (user) => divisionRows(user),
    parseSkiptoken: (skiptoken) =>
      /^\d{1,10}$/.test(skiptoken) ? divisionSortKey(Number(skiptoken)) : undefined,
  },
};

const API_PATH = /^\/api\/v1\/(\d{1,10})\/([a-z]+\/[a-z]+)$/;

/** A REST API call the router matched: the division from the path and the collection. */
export interface ApiRoute {
  division: number;
  resource: Resource;
}

/** What the REST API reads of a request. */
export interface ApiRequest {
  query: URLSearchParams;
  authorization: string | undefined;
  /** `http://host:port` as the client addressed the simulator, for the absolute `__next`. */
  origin: string;
}

/** The route for a lower-cased path, or undefined when it is not one of the REST API's. */
export function apiRoute(lowerCasedPath: string): ApiRoute | undefined {
  const match = API_PATH.exec(lowerCasedPath);
  const resource = match?.[2] === undefined ? undefined : RESOURCES[match[2]];
  return resource === undefined ? undefined : { division: Number(match?.[1]), resource };
}

/** `encodeURIComponent`, but `$` and `,` stay readable as Exact writes them (`$select=ID,Name`). */
function odataEncode(text: string): string {
  return encodeURIComponent(text).replace(/%24/g, "$").replace(/%2C/g, ",");
}

type Paging = { top: number | undefined; after: string | undefined } | { error: string };

function readPaging(query: URLSearchParams, resource: Resource): Paging {
  for (const name of ["$top", "$skiptoken"]) {
    if (query.getAll(name).length > 1) {
      return { error: `Parameter ${name} given more than once.` };
    }
  }
  const top = query.get("$top");
  if (top !== null && !/^\d{1,9}$/.test(top)) {
    return { error: "$top must be a whole number." };
  }
  const skiptoken = query.get("$skiptoken");
  const after = skiptoken === null ? undefined : resource.parseSkiptoken(skiptoken);
  if (skiptoken !== null && after === undefined) {
    return { error: "Invalid $skiptoken." };
  }
  return { top: top === null ? undefined : Number(top), after };
}

/**
 * `GET /api/v1/{division}/crm/Accounts` and `…/system/Divisions`. In this order: a script of the
 * access token's app (`"endpoint": "api"`: its answer, nothing checked, processed or charged, as
 * a script of `/current/Me`), the access token (401 as `/current/Me`), the division (403 `NoDivisionAccess` unless the user can open it), the
 * rate limits of (app, division) (429), the query options (400), then a page of 60 at most, with
 * `__next` while more remain. Other query options (`$select`, `$filter`, …) are not applied, but
 * carried into `__next` as Exact does.
 */
export function serveApiRequest(sim: Simulation, route: ApiRoute, request: ApiRequest): Answer {
  const { division, resource } = route;
  const bearer = readBearer(sim, request.authorization);
  const statsKey = bearer.record === undefined ? undefined : `${bearer.record.pair.clientId}/${division}`;
  const answer = (result: Answer, outcome: ApiOutcome): Answer => {
    sim.stats.recordApi(outcome, statsKey);
    return result;
  };

  const script = sim.scripts.take("api", bearer.record?.pair.clientId);
  if (script !== undefined) {
    return answer(scriptedAnswer(script, undefined), ApiOutcome.scripted);
  }
  if (!acceptsBearer(sim, bearer)) {
    return answer(unauthorized(), ApiOutcome.unauthorized);
  }
  const { user, clientId } = bearer.record.pair;
  if (!user.divisions.includes(division)) {
    return answer(noDivisionAccess(), ApiOutcome.noDivisionAccess);
  }
  const charge = sim.apiRateLimiter.charge(`${clientId}/${division}`, sim.clock.nowMs());
  if (!charge.allowed) {
    return answer(apiRateLimited(charge.headers), charge.outcome);
  }
  const paging = readPaging(request.query, resource);
  if ("error" in paging) {
    return answer(apiBadRequest(paging.error, charge.headers), ApiOutcome.badRequest);
  }

  const collectionUrl = `${request.origin}/api/v1/${division}/${resource.path}`;
  const rows = resource
    .rows(user, division)
    .filter((row) => paging.after === undefined || row.sortKey > paging.after);
  const page = rows.slice(0, Math.min(API_PAGE_SIZE, paging.top ?? API_PAGE_SIZE));
  const results = page.map((row) => ({
    __metadata: { uri: `${collectionUrl}(${row.keyText})`, type: resource.type },
    ...row.entity,
  }));
  const last = page.at(-1);
  const more = last !== undefined && rows.length > page.length && (paging.top ?? Infinity) > page.length;
  if (!more) {
    return answer(apiPage(results, undefined, charge.headers), ApiOutcome.ok);
  }
  const params = [...request.query].filter(([name]) => name !== "$top" && name !== "$skiptoken");
  if (paging.top !== undefined) {
    params.push(["$top", String(paging.top - page.length)]);
  }
  params.push(["$skiptoken", last.keyText]);
  const next = `${collectionUrl}?${params.map(([name, value]) => `${odataEncode(name)}=${odataEncode(value)}`).join("&")}`;
  return answer(apiPage(results, next, charge.headers), ApiOutcome.ok);
}
