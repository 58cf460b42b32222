/**
 * A scripted session against the Exact Online simulator, printed step by step: code exchange,
 * a refused early refresh, a refresh in the window, an old refresh token refused. Runs on its
 * own (`tsx scripts/sim-demo.ts`) and as part of `npm start`. Tokens are never printed whole.
 */
import { pathToFileURL } from "node:url";
import { startSimulator } from "../lib/sim/server.js";

const ACCESS_TTL_SECONDS = 20;
const REFRESH_AFTER_SECONDS = 15;
const APP = {
  clientId: "00000000-demo-4000-8000-000000000001",
  clientSecret: "demo-secret",
  redirectUris: ["http://localhost:3000/callback"],
};
const USER = {
  username: "demo.user@example.com",
  password: "demo-password",
  totpSecret: "JBSWY3DPEHPK3PXP",
  fullName: "Demo User",
  division: 123456,
};

interface Exchange {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: the demo reads a few known fields of Exact's JSON
  body: any;
}

/** First characters and length only: enough to tell tokens apart, useless to anyone reading the log. */
function redact(token: string): string {
  return `${token.slice(0, 6)}… (${token.length} chars)`;
}

function expectStatus(step: string, exchange: Exchange, expected: number): void {
  if (exchange.status !== expected) {
    throw new Error(
      `${step}: expected HTTP ${expected}, got ${exchange.status} ${JSON.stringify(exchange.body?.error)}`,
    );
  }
}

export async function runSimDemo(out: (line: string) => void): Promise<void> {
  const sim = await startSimulator({
    accessTtlSeconds: ACCESS_TTL_SECONDS,
    refreshAfterSeconds: REFRESH_AFTER_SECONDS,
  });
  const call = async (path: string, init: RequestInit = {}): Promise<Exchange> => {
    const response = await fetch(`${sim.url}${path}`, init);
    return { status: response.status, headers: response.headers, body: await response.json() };
  };
  const controlPost = (path: string, body: unknown): Promise<Exchange> =>
    call(path, { method: "POST", body: JSON.stringify(body) });
  const tokenPost = (params: Record<string, string>): Promise<Exchange> =>
    call("/api/oauth2/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ ...params, client_id: APP.clientId, client_secret: APP.clientSecret }),
    });

  try {
    out(`Exact Online simulator at ${sim.url}`);
    out(
      `  access tokens live ${ACCESS_TTL_SECONDS} s; a refresh is allowed ${REFRESH_AFTER_SECONDS} s after the last one`,
    );

    expectStatus("create app", await controlPost("/_sim/apps", APP), 201);
    expectStatus("create user", await controlPost("/_sim/users", USER), 201);
    out(`1. Registered app ${APP.clientId} and user ${USER.username}`);

    const authorized = await controlPost("/_sim/authorize", {
      clientId: APP.clientId,
      username: USER.username,
      redirectUri: APP.redirectUris[0],
    });
    expectStatus("authorize", authorized, 200);
    out(`2. User logged in and consented (operator shortcut): code ${redact(authorized.body.code)}`);

    const exchanged = await tokenPost({
      grant_type: "authorization_code",
      code: authorized.body.code,
      redirect_uri: APP.redirectUris[0] ?? "",
    });
    expectStatus("code exchange", exchanged, 200);
    const first = exchanged.body;
    out(
      `3. Code exchange: HTTP 200, access token ${redact(first.access_token)}, refresh token ${redact(first.refresh_token)}, expires_in "${first.expires_in}"`,
    );

    const me = await call("/api/v1/current/Me", {
      headers: { Authorization: `Bearer ${first.access_token}` },
    });
    expectStatus("current/Me", me, 200);
    const [who] = me.body.d.results;
    out(`4. GET /api/v1/current/Me: HTTP 200, ${who.UserName}, CurrentDivision ${who.CurrentDivision}`);

    const early = await tokenPost({ grant_type: "refresh_token", refresh_token: first.refresh_token });
    expectStatus("early refresh", early, 400);
    out(`5. Refresh right away: HTTP ${early.status} ${early.body.error} "${early.body.error_description}"`);
    out(`   Reason: ${early.headers.get("reason")}; the current tokens stay valid`);

    const clock = await controlPost("/_sim/clock", { advanceSeconds: REFRESH_AFTER_SECONDS + 1 });
    expectStatus("advance clock", clock, 200);
    out(
      `6. Sim clock advanced ${REFRESH_AFTER_SECONDS + 1} s into the refresh window (now ${clock.body.now})`,
    );

    const refreshed = await tokenPost({ grant_type: "refresh_token", refresh_token: first.refresh_token });
    expectStatus("refresh in the window", refreshed, 200);
    out(
      `7. Refresh in the window: HTTP 200, new access token ${redact(refreshed.body.access_token)}, new refresh token ${redact(refreshed.body.refresh_token)}`,
    );

    const old = await tokenPost({ grant_type: "refresh_token", refresh_token: first.refresh_token });
    expectStatus("old refresh token", old, 401);
    out(
      `8. The old refresh token again: HTTP ${old.status} ${old.body.error} "${old.body.error_description}"`,
    );

    const stats = await call("/_sim/stats");
    expectStatus("stats", stats, 200);
    const chain = stats.body.chains[`${APP.clientId}/${USER.username}`];
    const requests = chain.tokenRequests;
    out(
      `9. Stats: generation ${chain.generation}, chains started ${chain.chainsStarted}; token requests: issued ${requests.issued} (code_exchanged ${requests.code_exchanged}, refreshed ${requests.refreshed}), too_early ${requests.too_early}, old_token ${requests.old_token}`,
    );
  } finally {
    await sim.close();
  }
  out("Simulator stopped.");
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runSimDemo((line) => console.log(line)).catch((error: unknown) => {
    console.error("sim demo failed:", error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
