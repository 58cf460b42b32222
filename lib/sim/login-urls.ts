/**
 * Where the login pages live and what their cookies are called. On the real Exact the B2C
 * pages are on https://login.exact.com; the simulator serves them on its own origin under a
 * path that starts with that host name, so a client that builds B2C URLs from the page's origin
 * plus `SETTINGS.hosts.tenant` (as B2C's own JavaScript does) works against both.
 */
export const B2C_POLICY = "B2C_1A_SignIn";
export const B2C_TENANT_PATH = `/login.exact.com/exactonlineb2c.onmicrosoft.com/${B2C_POLICY}`;
/** `SETTINGS.api`: the name in the `confirmed` path. */
export const B2C_API = "CombinedSigninAndSignup";
/** The `client_id` Exact's side uses at B2C; B2C's authorize page does not check it. */
export const EXACT_B2C_CLIENT_ID = "e0b5c7a6-0000-4000-8000-00000000b2c0";

export const LOGIN_PATHS = {
  auth: "/api/oauth2/auth",
  login: "/docs/Login.aspx",
  b2cAuthorize: `${B2C_TENANT_PATH}/oauth2/v2.0/authorize`,
  selfAsserted: `${B2C_TENANT_PATH}/SelfAsserted`,
  confirmed: `${B2C_TENANT_PATH}/api/${B2C_API}/confirmed`,
  signin: "/signin-azureb2c",
} as const;

export const COOKIES = {
  /** Exact's session, on the whole origin. */
  session: "ExactSession",
  /** The cookie half of the start page's antiforgery pair (ASP.NET's name). */
  antiforgery: "__RequestVerificationToken",
  /** B2C's double-submit csrf cookie; it belongs to the B2C "host", so it stays under its path. */
  b2cCsrf: "x-ms-cpim-csrf",
} as const;

export const B2C_COOKIE_PATH = "/login.exact.com";
