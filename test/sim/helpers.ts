import { type Agent, request } from "node:http";
import { type Simulator, type SimulatorOptions, startSimulator } from "../../lib/sim/server.js";

/** The start of a clock hour, so error-limit windows in tests never straddle an hour by accident. */
export const START_MS = Date.UTC(2026, 0, 5, 10, 0, 0);

export const APP = {
  clientId: "3f1c2a5e-0000-4000-8000-000000000001",
  clientSecret: "app-one-secret",
  redirectUris: ["https://broker.example/callback"],
};
export const OTHER_APP = {
  clientId: "3f1c2a5e-0000-4000-8000-000000000002",
  clientSecret: "app-two-secret",
  redirectUris: ["https://other.example/callback"],
};
export const ALICE = {
  username: "alice@example.com",
  password: "alice-password",
  totpSecret: "JBSWY3DPEHPK3PXP",
  userId: "6a1b0c9d-1111-4222-8333-444455556666",
  division: 654321,
  fullName: "Alice Example",
};
export const BOB = { username: "bob@example.com", password: "bob-password", totpSecret: "KRSXG5CTMVRXEZLU" };

/** A simulator on a free port whose clock stands still unless a test advances it. */
export function startTestSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  return startSimulator({
    now: () => START_MS,
    config: { apps: [APP, OTHER_APP], users: [ALICE, BOB] },
    ...options,
  });
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: test responses are inspected field by field
  body: any;
}

async function toJson(response: Response): Promise<JsonResponse> {
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === "" ? undefined : JSON.parse(text),
  };
}

export async function postForm(sim: Simulator, params: Record<string, string>): Promise<JsonResponse> {
  return toJson(
    await fetch(`${sim.url}/api/oauth2/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(params),
    }),
  );
}

export async function control(
  sim: Simulator,
  method: string,
  path: string,
  body?: unknown,
): Promise<JsonResponse> {
  return toJson(
    await fetch(`${sim.url}${path}`, {
      method,
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
}

export async function getMe(sim: Simulator, accessToken: string | undefined): Promise<JsonResponse> {
  const headers: Record<string, string> =
    accessToken === undefined ? {} : { Authorization: `Bearer ${accessToken}` };
  return toJson(await fetch(`${sim.url}/api/v1/current/Me`, { headers }));
}

/** A REST API call; `target` is a path (`/api/v1/…`) or an absolute URL such as a `__next`. */
export async function getApi(sim: Simulator, target: string, accessToken?: string): Promise<JsonResponse> {
  const headers: Record<string, string> =
    accessToken === undefined ? {} : { Authorization: `Bearer ${accessToken}` };
  return toJson(await fetch(target.startsWith("http") ? target : `${sim.url}${target}`, { headers }));
}

export interface Tokens {
  accessToken: string;
  refreshToken: string;
}

export function codeGrant(code: string, app = APP): Record<string, string> {
  return {
    grant_type: "authorization_code",
    code,
    redirect_uri: app.redirectUris[0] ?? "",
    client_id: app.clientId,
    client_secret: app.clientSecret,
  };
}

export function refreshGrant(refreshToken: string, app = APP): Record<string, string> {
  return {
    grant_type: "refresh_token",
    refresh_token: refreshToken,
    client_id: app.clientId,
    client_secret: app.clientSecret,
  };
}

/** Authorizes `username` for `app` and exchanges the code: a new chain. */
export async function login(sim: Simulator, app = APP, username = ALICE.username): Promise<Tokens> {
  const code = sim.authorize({ clientId: app.clientId, username, redirectUri: app.redirectUris[0] ?? "" });
  const response = await postForm(sim, codeGrant(code, app));
  if (response.status !== 200) {
    throw new Error(`code exchange failed: ${response.status} ${JSON.stringify(response.body)}`);
  }
  return { accessToken: response.body.access_token, refreshToken: response.body.refresh_token };
}

export async function refresh(sim: Simulator, refreshToken: string, app = APP): Promise<JsonResponse> {
  return postForm(sim, refreshGrant(refreshToken, app));
}

/** The generation of the chain of (APP, ALICE), from the stats. */
export function generationOf(sim: Simulator, app = APP, username = ALICE.username): number | undefined {
  return sim.stats().chains[`${app.clientId}/${username}`]?.generation;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One request with node:http, which reports a reset as an error with `code: "ECONNRESET"` and a
 * refused connection as `"ECONNREFUSED"`. A fresh connection unless an agent is given.
 */
export function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; agent?: Agent } = {},
): Promise<RawResponse> {
  const { method = "GET", headers, body, agent = false } = options;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

export function rawTokenRequest(sim: Simulator, params: Record<string, string>): Promise<RawResponse> {
  return rawRequest(`${sim.url}/api/oauth2/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(params).toString(),
  });
}
