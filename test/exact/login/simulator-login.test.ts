import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type HttpRequest, type HttpSend, sendHttp } from "../../../lib/exact/http.js";
import type { LoginRequest, LoginResult } from "../../../lib/exact/login/login-driver.js";
import {
  LoginBadCredentials,
  LoginBadTotp,
  type LoginError,
  LoginLocked,
  LoginPageNotUnderstood,
} from "../../../lib/exact/login/login-errors.js";
import { OneExactIdentityDriver } from "../../../lib/exact/login/one-exact-identity-driver.js";
import { ExactOAuthClient } from "../../../lib/exact/oauth-client.js";
import { type Simulator, startSimulator } from "../../../lib/sim/server.js";

/**
 * The driver against the real simulator (lib/sim), which implements the login contract
 * independently of the fake in this folder. Both share one clock that `sleep` moves.
 */

const APP = {
  clientId: "7c0e4b1a-0000-4000-8000-00000000000a",
  clientSecret: "app-sEcReT-for-login-tests",
  redirectUris: ["https://broker.example/callback"],
};
const USER = {
  username: "carol@example.com",
  password: "carol-sEcReT-pw&!",
  totpSecret: "JBSWY3DPEHPK3PXP",
};
const START_MS = Date.parse("2026-11-26T12:00:10Z");
const STEP = Math.floor(START_MS / 30_000);

let sim: Simulator;
let clockMs = START_MS;
let sleeps: number[] = [];
const now = (): number => clockMs;
const sleep = async (ms: number): Promise<void> => {
  sleeps.push(ms);
  clockMs += ms;
};
let sent: HttpRequest[] = [];
const recordingSend: HttpSend = (req) => {
  sent.push(req);
  return sendHttp(req);
};
const driver = new OneExactIdentityDriver({ send: recordingSend, now, sleep, allowLoopback: true });
/** Claims across logins of one user are tested in simulator-shared-user.test.ts; here every step is free. */
const claimEveryStep = async (): Promise<boolean> => true;

/** The consent form posts back to the auth URL; nothing else POSTs there. */
function consentPosts(): number {
  return sent.filter((req) => req.method === "POST" && new URL(req.url).pathname === "/api/oauth2/auth")
    .length;
}

function request(overrides: Partial<LoginRequest> = {}): LoginRequest {
  return {
    baseUrl: sim.url,
    clientId: APP.clientId,
    redirectUri: APP.redirectUris[0] ?? "",
    responseType: "code",
    credentials: USER,
    claimTotpStep: claimEveryStep,
    timeoutMs: 60_000,
    ...overrides,
  };
}

async function loginFailure(promise: Promise<LoginResult>): Promise<LoginError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error("expected the login to fail, it succeeded");
  for (let current: unknown = outcome; current instanceof Error; current = current.cause) {
    for (const text of [current.message, JSON.stringify(current)]) {
      expect(text).not.toContain(USER.password);
      expect(text).not.toContain(USER.totpSecret);
      expect(text).not.toMatch(/sim(AT|RT|AC)!/);
    }
  }
  return outcome as LoginError;
}

function loginCounts(): Record<string, number> | undefined {
  return sim.stats().logins[USER.username];
}

beforeAll(async () => {
  sim = await startSimulator({ now, config: { apps: [APP], users: [USER] } });
});
afterAll(() => sim.close());
beforeEach(() => {
  sim.reset();
  clockMs = START_MS;
  sleeps = [];
  sent = [];
});

describe("OneExactIdentityDriver against the simulator", () => {
  it("logs in through consent and returns a code the token endpoint accepts", async () => {
    const result = await driver.login(request());

    expect(result.kind).toBe("code");
    expect(result.totpStep).toBe(STEP);
    expect(consentPosts()).toBe(1);
    if (result.kind !== "code") return;
    expect(result.code.startsWith("simAC!")).toBe(true);
    const oauth = new ExactOAuthClient({ now });
    const tokens = await oauth.exchangeCode(sim.url, APP, result.code, APP.redirectUris[0] ?? "", 5_000);
    expect(tokens.kind).toBe("tokens");
    expect(loginCounts()?.success).toBe(1);
  });

  it("returns an implicit access token that /current/Me accepts as the user's", async () => {
    const result = await driver.login(request({ responseType: "token" }));

    expect(result.kind).toBe("token");
    if (result.kind !== "token") return;
    expect(result.expiresInSeconds).toBe(600);
    const me = await new ExactOAuthClient({ now }).me(sim.url, result.accessToken, 5_000);
    expect(me).toMatchObject({ kind: "user", me: { userName: USER.username } });
  });

  it("logs in again on the next TOTP step, without a consent page the second time", async () => {
    const first = await driver.login(request());

    const second = await driver.login(request({ lastTotpStep: first.totpStep }));

    expect(sleeps).toEqual([21_000]);
    expect(second.totpStep).toBe(first.totpStep + 1);
    expect(consentPosts()).toBe(1);
    expect(loginCounts()?.success).toBe(2);
  });

  it("is refused when it reuses a step (a caller that did not store lastTotpStep)", async () => {
    await driver.login(request());

    const error = await loginFailure(driver.login(request()));

    expect(error).toBeInstanceOf(LoginBadTotp);
    expect(loginCounts()?.totp_reused).toBe(1);
  });

  it("throws LoginBadCredentials for a wrong password, after one attempt", async () => {
    const error = await loginFailure(
      driver.login(request({ credentials: { ...USER, password: "wrong-sEcReT" } })),
    );

    expect(error).toBeInstanceOf(LoginBadCredentials);
    expect(error.totpStep).toBe(STEP);
    expect(loginCounts()?.bad_password).toBe(1);
  });

  it("throws LoginBadTotp for a wrong TOTP secret", async () => {
    const error = await loginFailure(
      driver.login(request({ credentials: { ...USER, totpSecret: "KRSXG5CTMVRXEZLU" } })),
    );

    expect(error).toBeInstanceOf(LoginBadTotp);
    expect(loginCounts()?.bad_totp).toBe(1);
  });

  it("throws LoginLocked once five failures locked the user, even with the right password", async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      await loginFailure(driver.login(request({ credentials: { ...USER, password: "wrong-sEcReT" } })));
    }

    const error = await loginFailure(driver.login(request()));

    expect(error).toBeInstanceOf(LoginLocked);
    expect(loginCounts()?.locked).toBe(1);
  });

  it.each([
    ["start", "form", 'step "start page": no input named "LoginForm$UserName"'],
    ["start", "__RequestVerificationToken", 'step "start page": no input named "__RequestVerificationToken"'],
    ["start", "LoginForm$UserName", 'step "start page": no input named "LoginForm$UserName"'],
    ["b2c", "SETTINGS", 'step "b2c page": no script with "var SETTINGS'],
    ["b2c", "csrf", 'step "b2c page": SETTINGS has no "csrf"'],
    ["b2c", "transId", 'step "b2c page": SETTINGS has no "transId"'],
    ["b2c", "hosts", 'step "b2c page": SETTINGS has no "hosts.tenant"'],
    ["b2c", "form", 'step "b2c page": no input named "signInName"'],
    ["b2c", "signInName", 'step "b2c page": no input named "signInName"'],
    ["b2c", "password", 'step "b2c page": no input named "password"'],
    ["b2c", "totpVerificationCode", 'step "b2c page": no input named "totpVerificationCode"'],
    ["confirmed", "form", 'step "confirmed page": no form posting to "/signin-azureb2c"'],
    ["confirmed", "state", 'step "confirmed page": no input named "state"'],
    ["confirmed", "code", 'step "signin-azureb2c": HTTP 400'],
    ["confirmed", "id_token", 'step "signin-azureb2c": HTTP 400'],
    ["consent", "form", 'step "consent page": neither the redirect to redirect_uri nor a form'],
    ["consent", "consent", 'step "consent page": neither the redirect to redirect_uri nor a form'],
    ["consent", "__RequestVerificationToken", 'step "consent": HTTP 400'],
  ] as const)("names the step when the %s page lacks %s", async (page, missing, expected) => {
    sim.addFault({ kind: "break_page", page, missing });

    const error = await loginFailure(driver.login(request()));

    expect(error).toBeInstanceOf(LoginPageNotUnderstood);
    expect(error.message.startsWith(expected)).toBe(true);
  });
});
