import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TotpStepClaims } from "../../../lib/chain/totp-step-claims.js";
import type { LoginRequest, LoginResult } from "../../../lib/exact/login/login-driver.js";
import { LoginBadTotp } from "../../../lib/exact/login/login-errors.js";
import { OneExactIdentityDriver } from "../../../lib/exact/login/one-exact-identity-driver.js";
import { type LocalDynamo, startDynalite } from "../../../lib/local/dynalite.js";
import { type Simulator, startSimulator } from "../../../lib/sim/server.js";

/**
 * One Exact user behind two connections (two OAuth apps), both healing at once: the real driver
 * against the simulator over HTTP, with TOTP step claims in dynalite.
 */

const REDIRECT_URI = "https://broker.example/callback";
const APP_A = {
  clientId: "7c0e4b1a-0000-4000-8000-0000000000a1",
  clientSecret: "app-a-sEcReT-for-login-tests",
  redirectUris: [REDIRECT_URI],
};
const APP_B = {
  clientId: "7c0e4b1a-0000-4000-8000-0000000000b2",
  clientSecret: "app-b-sEcReT-for-login-tests",
  redirectUris: [REDIRECT_URI],
};
const USER = {
  username: "dave@example.com",
  password: "dave-sEcReT-pw&!",
  totpSecret: "JBSWY3DPEHPK3PXP",
};
/** 10 s into a TOTP step: both logins start in the same step, clear of its end. */
const START_MS = Date.parse("2026-11-26T12:00:10Z");
const STEP = Math.floor(START_MS / 30_000);

/**
 * Fake time for the drivers, the simulator and the claims, run as a discrete-event clock: a
 * `sleep` jumps the clock only once no login is awake, waking the earliest sleeper first. Real
 * logins spend milliseconds on HTTP and seconds in a TOTP wait, so a sleeper never wakes between
 * another login's making of its code and the simulator's check of it. (TestClock in
 * test/support/fixture.ts jumps at once, which here would carry the clock past the step of the
 * other login's code in flight.)
 */
class EventClock {
  ms = START_MS;
  readonly sleeps: number[] = [];
  #awake = 0;
  readonly #sleepers: { untilMs: number; wake: () => void }[] = [];
  readonly now = (): number => this.ms;

  readonly sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      this.sleeps.push(ms);
      this.#sleepers.push({ untilMs: this.ms + ms, wake: resolve });
      this.#awake -= 1;
      this.#advance();
    });

  /** Runs `login` as one awake participant until it settles. */
  async run<T>(login: () => Promise<T>): Promise<T> {
    this.#awake += 1;
    try {
      return await login();
    } finally {
      this.#awake -= 1;
      this.#advance();
    }
  }

  #advance(): void {
    if (this.#awake > 0) return;
    this.#sleepers.sort((a, b) => a.untilMs - b.untilMs);
    const next = this.#sleepers.shift();
    if (!next) return;
    this.ms = Math.max(this.ms, next.untilMs);
    this.#awake += 1;
    next.wake();
  }
}

let sim: Simulator;
let dynamo: LocalDynamo;
let clock: EventClock;

beforeAll(async () => {
  sim = await startSimulator({ now: () => clock.now(), config: { apps: [APP_A, APP_B], users: [USER] } });
  dynamo = await startDynalite();
});
afterAll(async () => {
  await sim.close();
  await dynamo.close();
});
beforeEach(() => {
  clock = new EventClock();
  sim.reset();
});

type ClaimTotpStep = LoginRequest["claimTotpStep"];

/** One connection's login as the broker runs it: the user's last claimed step as the hint. */
function heal(
  app: typeof APP_A,
  responseType: LoginRequest["responseType"],
  claimTotpStep: ClaimTotpStep,
  lastTotpStep: number | undefined,
): Promise<LoginResult> {
  const driver = new OneExactIdentityDriver({ now: clock.now, sleep: clock.sleep, allowLoopback: true });
  return clock.run(() =>
    driver.login({
      baseUrl: sim.url,
      clientId: app.clientId,
      redirectUri: REDIRECT_URI,
      responseType,
      credentials: USER,
      ...(lastTotpStep !== undefined ? { lastTotpStep } : {}),
      claimTotpStep,
      timeoutMs: 60_000,
    }),
  );
}

function loginCounts(): Record<string, number> | undefined {
  return sim.stats().logins[USER.username];
}

describe("two connections of one Exact user on two apps, healing in the same TOTP step", () => {
  it("both log in, on different steps, when they share the user's TOTP step claims", async () => {
    const claims = new TotpStepClaims({ tableName: await dynamo.createTable(), client: dynamo.client });
    const claimFor =
      (connectionId: string): ClaimTotpStep =>
      (step) =>
        claims.claim({ username: USER.username, step, connectionId, nowMs: clock.now() });
    const hint = await claims.lastStep(USER.username);

    const [a, b] = await Promise.all([
      heal(APP_A, "code", claimFor("conn-a"), hint),
      heal(APP_B, "token", claimFor("conn-b"), hint),
    ]);

    expect([a.totpStep, b.totpStep].sort((x, y) => x - y)).toEqual([STEP, STEP + 1]);
    expect(a.kind).toBe("code");
    expect(b.kind).toBe("token");
    expect(clock.sleeps).toEqual([21_000]);
    expect(loginCounts()).toMatchObject({ success: 2, totp_reused: 0, bad_totp: 0 });
    expect(await claims.lastStep(USER.username)).toBe(STEP + 1);
  });

  it("one is refused (totp_reused) when each connection only remembers its own last step", async () => {
    const perConnection = (): ClaimTotpStep => {
      let lastStep = -1;
      return async (step) => {
        if (step <= lastStep) return false;
        lastStep = step;
        return true;
      };
    };

    const outcomes = await Promise.allSettled([
      heal(APP_A, "code", perConnection(), undefined),
      heal(APP_B, "token", perConnection(), undefined),
    ]);

    const refused = outcomes.flatMap((outcome) => (outcome.status === "rejected" ? [outcome.reason] : []));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toBeInstanceOf(LoginBadTotp);
    expect((refused[0] as LoginBadTotp).totpStep).toBe(STEP);
    expect(loginCounts()).toMatchObject({ success: 1, totp_reused: 1 });
  });
});
