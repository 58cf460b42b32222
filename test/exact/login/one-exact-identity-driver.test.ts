import { createGuardrails, generate } from "otplib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ValidationError } from "../../../lib/errors.js";
import { type HttpSend, sendHttp } from "../../../lib/exact/http.js";
import type { LoginRequest, LoginResult } from "../../../lib/exact/login/login-driver.js";
import {
  LoginBadCredentials,
  LoginBadTotp,
  type LoginError,
  LoginLocked,
  LoginPageNotUnderstood,
  LoginUnavailable,
} from "../../../lib/exact/login/login-errors.js";
import { OneExactIdentityDriver } from "../../../lib/exact/login/one-exact-identity-driver.js";
import { FakeExact, type FakePage, TENANT } from "./fake-exact.js";

const USER = {
  username: "alice@example.com",
  password: "pw-sEcReT-Tr0ub4dor&3!",
  totpSecret: "JBSWY3DPEHPK3PXP",
};
const CLIENT_ID = "3f2e5d1c-0000-4000-8000-000000000001";
/** 12:00:10 UTC: 10 s into a TOTP step, clear of both ends. */
const START_MS = Date.parse("2026-11-26T12:00:10Z");
const STEP = Math.floor(START_MS / 30_000);
const GUARDRAILS = createGuardrails({ MIN_SECRET_BYTES: 10 });

/** Shared by the driver and the fake Exact; `sleep` moves it instead of waiting. */
class FakeClock {
  ms = START_MS;
  readonly sleeps: number[] = [];
  readonly now = (): number => this.ms;
  readonly sleep = async (ms: number): Promise<void> => {
    this.sleeps.push(ms);
    this.ms += ms;
  };
}

let clock: FakeClock;
let fake: FakeExact;
const others: FakeExact[] = [];
/** Every step `claimEveryStep` was asked for, in order. */
let claimed: number[];

/** The claim for tests about something else: every step is free, and recorded. */
async function claimEveryStep(step: number): Promise<boolean> {
  claimed.push(step);
  return true;
}

async function startFake(options: { consentRequired?: boolean } = {}): Promise<FakeExact> {
  fake = await FakeExact.start({ users: [USER], clientId: CLIENT_ID, now: clock.now, ...options });
  return fake;
}

function driver(send: HttpSend = sendHttp): OneExactIdentityDriver {
  return new OneExactIdentityDriver({ send, now: clock.now, sleep: clock.sleep, allowLoopback: true });
}

function request(overrides: Partial<LoginRequest> = {}): LoginRequest {
  return {
    baseUrl: fake.url,
    clientId: CLIENT_ID,
    redirectUri: fake.redirectUri,
    responseType: "code",
    credentials: USER,
    claimTotpStep: claimEveryStep,
    timeoutMs: 60_000,
    ...overrides,
  };
}

async function loginFailure(promise: Promise<LoginResult>): Promise<Error> {
  const result = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(result instanceof Error)) throw new Error("expected the login to fail, it succeeded");
  return result;
}

/**
 * No password, TOTP secret or code, cookie, code or token in the error, its fields or its causes
 * (design invariant 8). Codes are checked as whole numbers in messages only: a 6-digit code may
 * occur by chance inside a longer number such as a TOTP step.
 */
async function expectNoSecrets(error: Error): Promise<void> {
  const codes = await Promise.all(
    [-1, 0, 1, 2].map((offset) =>
      generate({ secret: USER.totpSecret, epoch: (STEP + offset) * 30, guardrails: GUARDRAILS }),
    ),
  );
  const secrets = [USER.password, encodeURIComponent(USER.password), USER.totpSecret, ...fake.issued];
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    const texts = [current.message, JSON.stringify(current), String(current)];
    for (const text of texts) {
      for (const secret of secrets) expect(text).not.toContain(secret);
    }
    for (const code of codes) expect(current.message).not.toMatch(new RegExp(`\\b${code}\\b`));
  }
}

beforeEach(async () => {
  clock = new FakeClock();
  claimed = [];
  await startFake();
});

afterEach(async () => {
  await Promise.all([fake, ...others.splice(0)].map((server) => server.close()));
});

describe("OneExactIdentityDriver", () => {
  describe("login", () => {
    it("returns the code from the final redirect, URL-decoded, with the TOTP step it used", async () => {
      const result = await driver().login(request());

      const issuedCode = fake.issued.find((value) => value.startsWith("fakeAC!"));
      expect(result).toEqual({ kind: "code", code: issuedCode, totpStep: STEP });
      expect(fake.outcomes).toEqual(["success", "authorized"]);
    });

    it("returns the access token and expires_in (a string in the fragment) for response_type=token", async () => {
      const result = await driver().login(request({ responseType: "token" }));

      const issuedToken = fake.issued.find((value) => value.startsWith("fakeAT!"));
      expect(result).toEqual({
        kind: "token",
        accessToken: issuedToken,
        expiresInSeconds: 600,
        totpStep: STEP,
      });
    });

    it("asks with force_login=1 and a random state, and never requests the redirect URI", async () => {
      await driver().login(request());
      await driver().login(request({ lastTotpStep: STEP }));

      const first = fake.requestsTo("/api/oauth2/auth");
      expect(first[0]?.query.get("force_login")).toBe("1");
      const states = fake.requests
        .filter((r) => r.path === "/api/oauth2/auth" && r.query.get("force_login") === "1")
        .map((r) => r.query.get("state") ?? "");
      expect(states).toHaveLength(2);
      expect(states[0]).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(states[0]).not.toBe(states[1]);
      expect(fake.requestsTo("/callback")).toEqual([]);
    });

    it("starts every login without a session, so the credentials are always checked", async () => {
      await driver().login(request());
      await driver().login(request({ lastTotpStep: STEP }));

      const authRequests = fake.requests.filter((r) => r.query.get("force_login") === "1");
      expect(authRequests).toHaveLength(2);
      expect(authRequests.map((r) => r.headers.cookie)).toEqual([undefined, undefined]);
      expect(fake.requestsTo(`${TENANT}/SelfAsserted`)).toHaveLength(2);
      expect(fake.outcomes).toEqual(["success", "authorized", "success", "authorized"]);
    });

    it("sends the password only in the SelfAsserted post, with the csrf header", async () => {
      await driver().login(request());

      const carriers = fake.requests.filter((r) =>
        [...new URLSearchParams(r.body).values(), ...r.query.values(), JSON.stringify(r.headers)].some(
          (text) => text.includes(USER.password),
        ),
      );
      expect(carriers.map((r) => r.path)).toEqual([`${TENANT}/selfasserted`.toLowerCase()]);
      expect(carriers[0]?.headers["x-csrf-token"]).toEqual(expect.any(String));
    });

    it("allows the app on the consent page the first time, and sees no consent page afterwards", async () => {
      await fake.close();
      await startFake({ consentRequired: true });

      const first = await driver().login(request());
      const second = await driver().login(request({ lastTotpStep: first.totpStep }));

      expect(first.kind).toBe("code");
      expect(second.kind).toBe("code");
      const consentPosts = fake.requests.filter((r) => r.method === "POST" && r.path === "/api/oauth2/auth");
      expect(consentPosts).toHaveLength(1);
      expect(new URLSearchParams(consentPosts[0]?.body).getAll("consent")).toEqual(["allow"]);
    });
  });

  describe("refusals by Exact", () => {
    it.each([
      ["a wrong password", { ...USER, password: "wrong-sEcReT" }],
      ["an unknown user", { ...USER, username: "mallory@example.com" }],
    ])("throws LoginBadCredentials for %s", async (_name, credentials) => {
      const error = await loginFailure(driver().login(request({ credentials })));

      expect(error).toBeInstanceOf(LoginBadCredentials);
      expect(error.name).toBe("LoginBadCredentials");
      expect(error.message).toBe('step "credentials": Exact refused the user name or password (AADB2C90225)');
      expect((error as LoginError).totpStep).toBe(STEP);
      expect((error as LoginError).retryable).toBe(false);
      await expectNoSecrets(error);
      expect(error.message).not.toContain("wrong-sEcReT");
    });

    it("throws LoginBadTotp when Exact refuses the verification code", async () => {
      const credentials = { ...USER, totpSecret: "KRUGS4ZANFZSAYJAORSXG5BA" };

      const error = await loginFailure(driver().login(request({ credentials })));

      expect(error).toBeInstanceOf(LoginBadTotp);
      expect(error.name).toBe("LoginBadTotp");
      expect(error.message).toContain("AADB2C90151");
      expect((error as LoginError).totpStep).toBe(STEP);
      await expectNoSecrets(error);
      expect(error.message).not.toContain("KRUGS4ZANFZSAYJAORSXG5BA");
    });

    it("throws LoginBadTotp when a caller reuses a step Exact already saw", async () => {
      await driver().login(request());

      const error = await loginFailure(driver().login(request()));

      expect(error).toBeInstanceOf(LoginBadTotp);
      expect(fake.outcomes.at(-1)).toBe("totp_reused");
      await expectNoSecrets(error);
    });

    it("throws LoginLocked for a locked account, even with the right credentials", async () => {
      fake.lock(USER.username);

      const error = await loginFailure(driver().login(request()));

      expect(error).toBeInstanceOf(LoginLocked);
      expect(error.name).toBe("LoginLocked");
      expect(error.message).toContain("AADB2C90092");
      await expectNoSecrets(error);
    });

    it("refuses an unusable TOTP secret before sending anything", async () => {
      const credentials = { ...USER, totpSecret: "not base32 sEcReT!" };

      const error = await loginFailure(driver().login(request({ credentials })));

      expect(error).toBeInstanceOf(LoginBadTotp);
      expect(error.message).toBe('step "totp": the stored TOTP secret is not base32 of at least 10 bytes');
      expect(error.cause).toBeUndefined();
      expect(fake.requests).toEqual([]);
      await expectNoSecrets(error);
    });
  });

  describe("pages it does not understand", () => {
    it.each<[FakePage, string, string, boolean]>([
      [
        "start",
        "__RequestVerificationToken",
        'step "start page": no input named "__RequestVerificationToken"',
        false,
      ],
      ["start", "LoginForm$UserName", 'step "start page": no input named "LoginForm$UserName"', false],
      ["b2c", "SETTINGS", 'step "b2c page": no script with "var SETTINGS', false],
      ["b2c", "csrf", 'step "b2c page": SETTINGS has no "csrf"', false],
      ["b2c", "transId", 'step "b2c page": SETTINGS has no "transId"', false],
      ["b2c", "hosts", 'step "b2c page": SETTINGS has no "hosts.tenant"', false],
      ["b2c", "signInName", 'step "b2c page": no input named "signInName"', false],
      ["b2c", "password", 'step "b2c page": no input named "password"', false],
      ["b2c", "totpVerificationCode", 'step "b2c page": no input named "totpVerificationCode"', false],
      ["confirmed", "state", 'step "confirmed page": no input named "state"', true],
      ["confirmed", "form", 'step "confirmed page": no form posting to "/signin-azureb2c"', true],
      ["consent", "consent", 'step "consent page": neither the redirect to redirect_uri nor a form', true],
    ])("names the step when the %s page lacks %s", async (page, missing, expected, passwordSent) => {
      if (page === "consent") {
        await fake.close();
        await startFake({ consentRequired: true });
      }
      fake.breaks[page] = missing;

      const error = await loginFailure(driver().login(request()));

      expect(error).toBeInstanceOf(LoginPageNotUnderstood);
      expect(error.name).toBe("LoginPageNotUnderstood");
      expect(error.message.startsWith(expected)).toBe(true);
      // A page it does not understand before the credentials means no password was sent.
      expect(fake.requestsTo(`${TENANT}/SelfAsserted`)).toHaveLength(passwordSent ? 1 : 0);
      expect((error as LoginError).totpStep).toBe(passwordSent ? STEP : undefined);
      await expectNoSecrets(error);
    });

    it("reports a sign-in post Exact refuses (confirmed page without its code) at that step", async () => {
      fake.breaks.confirmed = "code";

      const error = await loginFailure(driver().login(request()));

      expect(error).toBeInstanceOf(LoginPageNotUnderstood);
      expect(error.message).toMatch(/^step "signin-azureb2c": HTTP 400 from http:\/\/127\.0\.0\.1:\d+$/);
      await expectNoSecrets(error);
    });

    it("refuses a redirect to another origin and sends it nothing, the password least of all", async () => {
      const foreign = await FakeExact.start({ users: [USER], clientId: CLIENT_ID, now: clock.now });
      others.push(foreign);
      fake.b2cOrigin = foreign.url;

      const error = await loginFailure(driver().login(request()));

      expect(error).toBeInstanceOf(LoginPageNotUnderstood);
      expect(error.message).toBe(
        `step "user name": refused to send a request to ${foreign.url}: only ${fake.url} and https://login.exact.com may receive the login`,
      );
      expect(foreign.requests).toEqual([]);
      expect(fake.requestsTo(`${TENANT}/SelfAsserted`)).toEqual([]);
      await expectNoSecrets(error);
    });

    it("refuses a final redirect whose state is not the one it sent", async () => {
      fake.tamperState = true;

      const error = await loginFailure(driver().login(request()));

      expect(error).toBeInstanceOf(LoginPageNotUnderstood);
      expect(error.message).toBe(
        'step "final redirect": the "state" parameter is not the one this login sent',
      );
      await expectNoSecrets(error);
    });

    it("names the error Exact put in the final redirect", async () => {
      fake.finalError = "access_denied";

      const error = await loginFailure(driver().login(request({ responseType: "token" })));

      expect(error).toBeInstanceOf(LoginPageNotUnderstood);
      expect(error.message).toBe('step "final redirect": Exact answered error "access_denied"');
      await expectNoSecrets(error);
    });

    it("stops after 15 redirects", async () => {
      fake.loopLogin = true;

      const error = await loginFailure(driver().login(request()));

      expect(error).toBeInstanceOf(LoginPageNotUnderstood);
      expect(error.message).toBe('step "auth request": more than 15 redirects');
      // The auth request and the 15 redirects it followed; the 16th is refused.
      expect(fake.requests).toHaveLength(16);
      await expectNoSecrets(error);
    });

    it("names an unknown client or redirect URI as a refused auth request", async () => {
      const error = await loginFailure(driver().login(request({ clientId: "unknown-client" })));

      expect(error).toBeInstanceOf(LoginPageNotUnderstood);
      expect(error.message).toMatch(/^step "auth request": HTTP 400 from /);
      await expectNoSecrets(error);
    });
  });

  describe("unavailability", () => {
    it("throws a retryable LoginUnavailable when Exact answers 5xx", async () => {
      fake.failPath = `${TENANT}/oauth2/v2.0/authorize`.toLowerCase();

      const error = await loginFailure(driver().login(request()));

      expect(error).toBeInstanceOf(LoginUnavailable);
      expect(error.name).toBe("LoginUnavailable");
      expect(error.message).toBe(`step "user name": HTTP 503 from ${fake.url}`);
      expect((error as LoginUnavailable).retryAfterSeconds).toBe(60);
      await expectNoSecrets(error);
    });

    it("throws a retryable LoginUnavailable when Exact cannot be reached", async () => {
      const gone = fake.url;
      await fake.close();
      fake = await FakeExact.start({ users: [USER], clientId: CLIENT_ID, now: clock.now });

      const error = await loginFailure(driver().login(request({ baseUrl: gone })));

      expect(error).toBeInstanceOf(LoginUnavailable);
      expect(error.message).toBe(`step "auth request": could not reach ${gone}`);
      expect((error as LoginUnavailable).retryable).toBe(true);
      expect(error.cause).toBeInstanceOf(Error);
      await expectNoSecrets(error);
    });

    it("gives up when the login's budget runs out", async () => {
      const slow: HttpSend = async (req) => {
        clock.ms += 20_000;
        return sendHttp(req);
      };

      const error = await loginFailure(driver(slow).login(request({ timeoutMs: 50_000 })));

      expect(error).toBeInstanceOf(LoginUnavailable);
      expect(error.message).toMatch(/^step "[a-z ]+": the login's 50000 ms budget ran out$/);
      expect(fake.requests).toHaveLength(3);
      await expectNoSecrets(error);
    });

    it("refuses a base URL that is not Exact's unless loopback is allowed, before any request", async () => {
      const strict = new OneExactIdentityDriver({ now: clock.now, sleep: clock.sleep });

      const error = await loginFailure(strict.login(request()));

      expect(error).toBeInstanceOf(ValidationError);
      expect(fake.requests).toEqual([]);
    });
  });

  describe("TOTP steps", () => {
    it("waits for the next step when the last login used the current one, and returns that step", async () => {
      const result = await driver().login(request({ lastTotpStep: STEP }));

      // 10 s into step STEP: 20 s to the next step plus the 1 s margin.
      expect(clock.sleeps).toEqual([21_000]);
      expect(result.totpStep).toBe(STEP + 1);
      expect(claimed).toEqual([STEP + 1]);
      expect(fake.outcomes[0]).toBe("success");
    });

    it("does not wait when the last login used an earlier step", async () => {
      const result = await driver().login(request({ lastTotpStep: STEP - 1 }));

      expect(clock.sleeps).toEqual([]);
      expect(result.totpStep).toBe(STEP);
    });

    it("waits past the next step too when the last step lies ahead of its clock", async () => {
      const result = await driver().login(request({ lastTotpStep: STEP + 1 }));

      expect(clock.sleeps).toEqual([51_000]);
      expect(result.totpStep).toBe(STEP + 2);
    });

    it("does not use a step about to end", async () => {
      clock.ms = (STEP + 1) * 30_000 - 1_500;

      const result = await driver().login(request());

      expect(clock.sleeps).toEqual([2_500]);
      expect(result.totpStep).toBe(STEP + 1);
    });

    it("refuses to wait past the login's deadline, before sending the password", async () => {
      const error = await loginFailure(driver().login(request({ lastTotpStep: STEP, timeoutMs: 15_000 })));

      expect(error).toBeInstanceOf(LoginUnavailable);
      expect(error.message).toBe(
        `step "totp": the next unused TOTP step starts in 21000 ms, after the login's deadline`,
      );
      expect((error as LoginUnavailable).retryAfterSeconds).toBe(21);
      expect(clock.sleeps).toEqual([]);
      expect(claimed).toEqual([]);
      expect(fake.requestsTo(`${TENANT}/SelfAsserted`)).toEqual([]);
      await expectNoSecrets(error);
    });
  });

  describe("TOTP step claims", () => {
    const selfAsserted = (): number => fake.requestsTo(`${TENANT}/SelfAsserted`).length;
    const codeOf = (step: number): Promise<string> =>
      generate({ secret: USER.totpSecret, epoch: step * 30, guardrails: GUARDRAILS });

    it("claims the step before posting the credentials, and sends that step's code", async () => {
      const claims: { step: number; postsBefore: number }[] = [];
      const claimTotpStep = async (step: number): Promise<boolean> => {
        claims.push({ step, postsBefore: selfAsserted() });
        return true;
      };

      const result = await driver().login(request({ claimTotpStep }));

      expect(claims).toEqual([{ step: STEP, postsBefore: 0 }]);
      expect(result.totpStep).toBe(STEP);
      const [post] = fake.requestsTo(`${TENANT}/SelfAsserted`);
      expect(new URLSearchParams(post?.body).get("totpVerificationCode")).toBe(await codeOf(STEP));
    });

    it("waits for the next step when another login of the user took this one, and uses that", async () => {
      const claims: number[] = [];
      const claimTotpStep = async (step: number): Promise<boolean> => {
        claims.push(step);
        return step > STEP;
      };

      const result = await driver().login(request({ claimTotpStep }));

      expect(claims).toEqual([STEP, STEP + 1]);
      expect(clock.sleeps).toEqual([21_000]);
      expect(result.totpStep).toBe(STEP + 1);
      const posts = fake.requestsTo(`${TENANT}/SelfAsserted`);
      expect(posts).toHaveLength(1);
      expect(new URLSearchParams(posts[0]?.body).get("totpVerificationCode")).toBe(await codeOf(STEP + 1));
      expect(fake.outcomes[0]).toBe("success");
    });

    it("gives a claimed step up when the claim returned too close to the step's end", async () => {
      const claims: number[] = [];
      const claimTotpStep = async (step: number): Promise<boolean> => {
        claims.push(step);
        // The first claim takes 19 s: it returns 1 s before the step ends.
        if (claims.length === 1) clock.ms += 19_000;
        return true;
      };

      const result = await driver().login(request({ claimTotpStep }));

      expect(claims).toEqual([STEP, STEP + 1]);
      expect(clock.sleeps).toEqual([2_000]);
      expect(result.totpStep).toBe(STEP + 1);
      expect(fake.outcomes[0]).toBe("success");
    });

    it("ends in LoginUnavailable, with no credentials sent, when claims are refused until the budget runs out", async () => {
      const claims: number[] = [];
      const claimTotpStep = async (step: number): Promise<boolean> => {
        claims.push(step);
        return false;
      };

      const error = await loginFailure(driver().login(request({ claimTotpStep, timeoutMs: 60_000 })));

      expect(error).toBeInstanceOf(LoginUnavailable);
      expect(error.message).toBe(
        `step "totp": another login of this user took TOTP step ${STEP + 2}; the next unused TOTP step starts in 30000 ms, after the login's deadline`,
      );
      expect((error as LoginUnavailable).retryAfterSeconds).toBe(30);
      expect((error as LoginError).totpStep).toBeUndefined();
      expect(claims).toEqual([STEP, STEP + 1, STEP + 2]);
      expect(clock.sleeps).toEqual([21_000, 30_000]);
      expect(selfAsserted()).toBe(0);
      await expectNoSecrets(error);
    });

    it("ends in a retryable LoginUnavailable carrying the cause, with no credentials sent, when the claim throws", async () => {
      const outage = new Error("DynamoDB is unreachable");
      const claimTotpStep = async (): Promise<boolean> => {
        throw outage;
      };

      const error = await loginFailure(driver().login(request({ claimTotpStep })));

      expect(error).toBeInstanceOf(LoginUnavailable);
      expect(error).not.toBeInstanceOf(LoginBadCredentials);
      expect(error.message).toBe(`step "totp": could not claim TOTP step ${STEP} for this user`);
      expect(error.cause).toBe(outage);
      expect((error as LoginUnavailable).retryable).toBe(true);
      expect((error as LoginUnavailable).retryAfterSeconds).toBe(30);
      expect((error as LoginError).totpStep).toBeUndefined();
      expect(selfAsserted()).toBe(0);
      await expectNoSecrets(error);
    });
  });
});
