import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { apiRoute, serveApiRequest } from "./api-endpoints.js";
import type {
  AppSpec,
  AuthorizeRequest,
  RefreshTokenAgeSpec,
  SimulatorConfig,
  UserDivisionsSpec,
  UserSpec,
} from "./config.js";
import { handleControlRequest } from "./control-api.js";
import { type Reply, serveExactRequest } from "./exact-pipeline.js";
import type { FaultSpec } from "./faults.js";
import { isLoopbackAddress, readBody, resetConnection, sendAnswer } from "./http.js";
import { Listener } from "./listener.js";
import { requestOrigin, toLoginRequest } from "./login-request.js";
import { loginRoute } from "./login-routes.js";
import { prepareMeRequest } from "./me-endpoint.js";
import type { ScriptSpec } from "./scripts.js";
import { resolveSettings } from "./settings.js";
import { Simulation } from "./simulation.js";
import type { PublicUser } from "./state.js";
import type { SimulatorStats } from "./stats.js";
import { prepareTokenRequest } from "./token-endpoint.js";
import type { TokenStyle } from "./tokens.js";
import type { Variants } from "./variants.js";

export type {
  AppSpec,
  AuthorizeRequest,
  FaultSpec,
  PublicUser,
  RefreshTokenAgeSpec,
  ScriptSpec,
  SimulatorConfig,
  SimulatorStats,
  TokenStyle,
  UserDivisionsSpec,
  UserSpec,
  Variants,
};

const HOST = "127.0.0.1";

export interface SimulatorOptions {
  /** 0 picks a free port. @default 0 (the CLI's default is 8123) */
  port?: number;
  /** Lifetime of an access token, and `expires_in`. @default 600 */
  accessTtlSeconds?: number;
  /** Refreshes earlier than this after the last access token are "too early". @default accessTtlSeconds - 30, at least 0 */
  refreshAfterSeconds?: number;
  /** A refresh token expires this long after it was issued. @default 30 */
  refreshTtlDays?: number;
  /** The REST API's budget per (app, division) and clock minute of sim time. @default 60 */
  apiCallsPerMinute?: number;
  /** The REST API's budget per (app, division) and UTC day of sim time. @default 5000 */
  apiCallsPerDay?: number;
  /** Apps and users created at start (and again on reset). */
  config?: SimulatorConfig;
  /** Base clock in epoch ms; sim time is this plus an offset only the control API moves. @default Date.now */
  now?: () => number;
  /** @default every switch off, except oldAccessTokenValidAfterRefresh; dailyTokenCapPerDay 200, accessTokenRevokedAfterSeconds 0 */
  variants?: Partial<Variants>;
  /**
   * `long`: access tokens of about 1,500 characters and refresh tokens of about 900, standard
   * base64 with `+`, `/` and `=`, as Exact's grew. @default "short" (about 330 and 220)
   */
  tokenStyle?: TokenStyle;
}

/** A running simulator. The methods mirror the control API and validate the same way. */
export interface Simulator {
  /** `http://127.0.0.1:PORT`, the base URL a client uses in place of `https://start.exactonline.nl`. */
  readonly url: string;
  readonly port: number;
  /** Sim time in epoch ms. */
  nowMs(): number;
  /** `POST /_sim/clock`; returns the new sim time in epoch ms. */
  advanceClock(seconds: number): number;
  /** `POST /_sim/apps`. */
  addApp(spec: AppSpec): void;
  /** `POST /_sim/users`. */
  addUser(spec: UserSpec): PublicUser;
  /**
   * `POST /_sim/users/{username}/divisions`: the user opened another company (`division`, its
   * `CurrentDivision`) or can open other ones (`divisions`); returns the user after the change.
   */
  setUserDivisions(username: string, spec: UserDivisionsSpec): PublicUser;
  /** `POST /_sim/authorize`; returns the authorization code. */
  authorize(request: AuthorizeRequest): string;
  /**
   * `POST /_sim/refresh-token-age`: the live refresh token of (client ID, user) as if issued
   * `ageSeconds` ago (it expires 30 days after that); returns when it expires (epoch ms).
   */
  setRefreshTokenAge(spec: RefreshTokenAgeSpec): number;
  /** `POST /_sim/variants`; returns all variants after the change. */
  setVariants(partial: Partial<Variants>): Variants;
  /** `POST /_sim/faults`; returns the fault's id. */
  addFault(spec: FaultSpec): string;
  /** `DELETE /_sim/faults`; returns how many were removed. */
  clearFaults(): number;
  /** `POST /_sim/scripts`; returns the script's id. */
  addScript(spec: ScriptSpec): string;
  /** `DELETE /_sim/scripts`; returns how many were removed. */
  clearScripts(): number;
  /** `GET /_sim/stats`. */
  stats(): SimulatorStats;
  /** `POST /_sim/reset`: back to the state right after start. */
  reset(): void;
  /** Stops listening and drops every connection. */
  close(): Promise<void>;
}

/**
 * Starts an Exact Online simulator on 127.0.0.1. Rejects with a `ValidationError` for bad
 * options (including a bad `config`), or with the listen error.
 */
export async function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const settings = resolveSettings(options);
  const server = createServer();
  const listener = new Listener(server, HOST);
  const sim = new Simulation(settings, { refuse: (durationMs) => listener.refuse(durationMs) });
  /** Set once listening; login pages use it when a request's Host header is unusable. */
  let url = `http://${HOST}`;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const target = req.url ?? "/";
    const queryStart = target.indexOf("?");
    const path = queryStart === -1 ? target : target.slice(0, queryStart);
    const query = queryStart === -1 ? "" : target.slice(queryStart + 1);
    const body = await readBody(req);
    const reply: Reply = {
      send(answer) {
        // While refusing, no connection may stay open to carry a request past the refusal.
        if (listener.refusing) {
          res.setHeader("Connection", "close");
        }
        sendAnswer(res, answer);
      },
      reset: () => resetConnection(req),
    };
    if (path.startsWith("/_sim/")) {
      return reply.send(
        isLoopbackAddress(req.socket.remoteAddress)
          ? handleControlRequest(sim, method, path, body)
          : { status: 404, body: { error: "not_found" } },
      );
    }
    // Exact's URLs are case-insensitive (`/current/Me`, `/current/me`).
    const exactPath = `${method} ${path.toLowerCase()}`;
    if (exactPath === "POST /api/oauth2/token") {
      return serveExactRequest(sim, prepareTokenRequest(sim, req.headers["content-type"], body), reply);
    }
    if (exactPath === "GET /api/v1/current/me") {
      return serveExactRequest(sim, prepareMeRequest(sim, req.headers.authorization), reply);
    }
    const api = method === "GET" ? apiRoute(path.toLowerCase()) : undefined;
    if (api !== undefined) {
      return reply.send(
        serveApiRequest(sim, api, {
          query: new URLSearchParams(query),
          authorization: req.headers.authorization,
          origin: requestOrigin(req.headers.host, url),
        }),
      );
    }
    const loginHandler = loginRoute(method, path);
    if (loginHandler !== undefined) {
      return reply.send(
        await loginHandler(sim, toLoginRequest(method, req.url ?? "/", req.headers, body, url)),
      );
    }
    reply.send({ status: 404, body: { error: "not_found" } });
  }

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    route(req, res).catch((error: unknown) => {
      // A client that hung up mid-request is not a bug; there is nobody left to answer.
      if (req.socket.destroyed || res.headersSent) {
        return;
      }
      console.error("Exact Online simulator: internal error", error);
      sendAnswer(res, { status: 500, body: { error: "internal_error" } });
    });
  });

  const port = await listener.listen(settings.port);
  url = `http://${HOST}:${port}`;
  return {
    url,
    port,
    nowMs: () => sim.clock.nowMs(),
    advanceClock: (seconds) => sim.advanceClock(seconds),
    addApp: (spec) => {
      sim.addApp(spec);
    },
    addUser: (spec) => sim.addUser(spec),
    setUserDivisions: (username, spec) => sim.setUserDivisions(username, spec),
    authorize: (request) => sim.authorize(request),
    setRefreshTokenAge: (spec) => sim.setRefreshTokenAge(spec),
    setVariants: (partial) => sim.setVariants(partial),
    addFault: (spec) => sim.addFault(spec),
    clearFaults: () => sim.clearFaults(),
    addScript: (spec) => sim.addScript(spec),
    clearScripts: () => sim.clearScripts(),
    stats: () => sim.statsView(),
    reset: () => sim.reset(),
    close: () => listener.close(),
  };
}
