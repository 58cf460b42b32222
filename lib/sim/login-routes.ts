import { serveAuthorize, serveConsent } from "./authorize-endpoint.js";
import { serveB2cAuthorize, serveConfirmed, serveSelfAsserted } from "./b2c-pages.js";
import { serveSignin, serveStartPage, serveUserNamePost } from "./exact-login.js";
import type { Answer } from "./http.js";
import type { LoginRequest } from "./login-request.js";
import { LOGIN_PATHS } from "./login-urls.js";
import type { Simulation } from "./simulation.js";

export type LoginHandler = (sim: Simulation, request: LoginRequest) => Answer | Promise<Answer>;

/**
 * The interactive login, in the order a browser meets it (see lib/sim/README.md, "Login").
 * Paths are matched lower-cased: Exact's and B2C's paths are case-insensitive.
 */
const ROUTES: [method: string, path: string, handler: LoginHandler][] = [
  ["GET", LOGIN_PATHS.auth, serveAuthorize],
  ["GET", LOGIN_PATHS.login, serveStartPage],
  ["POST", LOGIN_PATHS.login, serveUserNamePost],
  ["GET", LOGIN_PATHS.b2cAuthorize, serveB2cAuthorize],
  ["POST", LOGIN_PATHS.selfAsserted, serveSelfAsserted],
  ["GET", LOGIN_PATHS.confirmed, serveConfirmed],
  ["POST", LOGIN_PATHS.signin, serveSignin],
  ["POST", LOGIN_PATHS.auth, serveConsent],
];

const BY_KEY = new Map(ROUTES.map(([method, path, handler]) => [`${method} ${path.toLowerCase()}`, handler]));

/** The handler for a login page or endpoint, or undefined when the request is not one. */
export function loginRoute(method: string, path: string): LoginHandler | undefined {
  return BY_KEY.get(`${method} ${path.toLowerCase()}`);
}
