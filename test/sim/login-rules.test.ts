import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import { ALICE, BOB, startTestSimulator } from "./helpers.js";
import {
  authorizeViaPages,
  authUrl,
  type B2cSettings,
  Browser,
  b2cUrls,
  openB2cPage,
  type PageResponse,
  postSelfAsserted,
  totpAt,
} from "./login-helpers.js";

const OK = { status: "200" };
const BAD_PASSWORD = { status: "400", errorCode: "AADB2C90225", message: "Your password is incorrect." };
const BAD_CODE = {
  status: "400",
  errorCode: "AADB2C90151",
  message: "The verification code you entered is invalid.",
};
const LOCKED = {
  status: "400",
  errorCode: "AADB2C90092",
  message: "Your account is temporarily locked to prevent unauthorized use. Try again later.",
};

interface Transaction {
  browser: Browser;
  page: PageResponse;
  settings: B2cSettings;
}

describe("login rules", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  /** A B2C sign-in page reached the way a browser does (steps 1 to 4). */
  async function openTransaction(username = ALICE.username): Promise<Transaction> {
    const browser = new Browser();
    const auth = await browser.get(authUrl(sim));
    const { page, settings } = await openB2cPage(browser, auth.location ?? "", username);
    return { browser, page, settings };
  }

  /** B2C's JSON answer, compared whole. */
  async function attempt(
    tx: Transaction,
    credentials: { username: string; password: string; totp?: string },
  ): Promise<unknown> {
    const totp = credentials.totp ?? (await totpAt(sim));
    const response = await postSelfAsserted(tx.browser, tx.page, tx.settings, { ...credentials, totp });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    return JSON.parse(response.text);
  }

  const wrongPassword = { ...ALICE, password: "not-the-password" };

  function loginsOf(username: string): Record<string, number> | undefined {
    return sim.stats().logins[username];
  }

  describe("credentials", () => {
    it("a wrong password gets B2C's error; the same page may try again and go on", async () => {
      const tx = await openTransaction();

      expect(await attempt(tx, wrongPassword)).toEqual(BAD_PASSWORD);
      expect((await tx.browser.get(b2cUrls(tx.page, tx.settings).confirmed)).status).toBe(400);
      expect(await attempt(tx, ALICE)).toEqual(OK);
      expect((await tx.browser.get(b2cUrls(tx.page, tx.settings).confirmed)).status).toBe(200);
      expect(loginsOf(ALICE.username)).toMatchObject({ bad_password: 1, success: 1 });
    });

    it("checks the password before the code", async () => {
      const tx = await openTransaction();

      expect(await attempt(tx, { ...wrongPassword, totp: "000000" })).toEqual(BAD_PASSWORD);
    });

    it.each([
      ["a wrong code", "000000"],
      ["letters", "abcdef"],
      ["five digits", "12345"],
      ["nothing", ""],
    ])("a wrong TOTP code (%s) gets B2C's invalid-code error", async (_label, totp) => {
      const tx = await openTransaction();
      const right = await totpAt(sim);

      expect(await attempt(tx, { ...ALICE, totp: totp === right ? "111111" : totp })).toEqual(BAD_CODE);
      expect(loginsOf(ALICE.username)).toMatchObject({ bad_totp: 1, success: 0 });
    });

    it("accepts the current 30 s step only, not the one before or after", async () => {
      sim.advanceClock(15); // mid-step
      const tx = await openTransaction();

      expect(await attempt(tx, { ...ALICE, totp: await totpAt(sim, ALICE.totpSecret, -30) })).toEqual(
        BAD_CODE,
      );
      expect(await attempt(tx, { ...ALICE, totp: await totpAt(sim, ALICE.totpSecret, 30) })).toEqual(
        BAD_CODE,
      );
      expect(await attempt(tx, { ...ALICE, totp: await totpAt(sim, ALICE.totpSecret, 14) })).toEqual(OK);
    });

    it("checks the code at sim time: after a clock advance, the new step's code", async () => {
      sim.advanceClock(3600);
      const tx = await openTransaction();

      expect(await attempt(tx, ALICE)).toEqual(OK);
    });

    it("an unknown user gets the wrong-password answer and counts as unknown_user under the name typed", async () => {
      const tx = await openTransaction("nobody@example.com");

      expect(await attempt(tx, { username: "nobody@example.com", password: "x" })).toEqual(BAD_PASSWORD);
      expect(await attempt(tx, { username: "", password: "x" })).toEqual(BAD_PASSWORD);
      expect(loginsOf("nobody@example.com")).toMatchObject({ unknown_user: 1, bad_password: 0 });
      expect(Object.keys(sim.stats().logins)).toEqual(["nobody@example.com"]);
      expect(sim.stats().totals.logins.unknown_user).toBe(2);
    });
  });

  describe("TOTP step reuse", () => {
    it("refuses a code of a step the user already logged in with, until the next step", async () => {
      const code = await totpAt(sim);
      await authorizeViaPages(sim, new Browser(), {}, { ...ALICE, totp: code });

      const again = await openTransaction();
      expect(await attempt(again, { ...ALICE, totp: code })).toEqual(BAD_CODE);
      expect(loginsOf(ALICE.username)).toMatchObject({ success: 1, totp_reused: 1, bad_totp: 0 });

      sim.advanceClock(30);
      expect(await attempt(again, ALICE)).toEqual(OK);
    });

    it("refuses the step however it arrives: another browser, another app, another response type", async () => {
      await authorizeViaPages(sim, new Browser(), { responseType: "token" });

      const tx = await openTransaction();
      expect(await attempt(tx, ALICE)).toEqual(BAD_CODE);
    });

    it("is per user: another user may use the same step", async () => {
      await authorizeViaPages(sim, new Browser());

      const tx = await openTransaction(BOB.username);
      expect(await attempt(tx, { ...BOB, totp: await totpAt(sim, BOB.totpSecret) })).toEqual(OK);
    });

    it("a failed attempt does not use the step up", async () => {
      const tx = await openTransaction();

      expect(await attempt(tx, wrongPassword)).toEqual(BAD_PASSWORD);
      expect(await attempt(tx, ALICE)).toEqual(OK);
    });

    it("lets exactly one of two concurrent sign-ins with the same code through", async () => {
      const [first, second] = await Promise.all([openTransaction(), openTransaction()]);
      if (first === undefined || second === undefined) throw new Error("unreachable");

      const answers = await Promise.all([attempt(first, ALICE), attempt(second, ALICE)]);

      expect(answers).toEqual(expect.arrayContaining([OK, BAD_CODE]));
      expect(loginsOf(ALICE.username)).toMatchObject({ success: 1, totp_reused: 1 });
    });
  });

  describe("lockout", () => {
    it("locks the user after 5 failures in a row for 15 minutes of sim time, even with the right credentials", async () => {
      const tx = await openTransaction();
      for (let i = 0; i < 5; i++) {
        expect(await attempt(tx, wrongPassword)).toEqual(BAD_PASSWORD);
      }

      expect(await attempt(tx, ALICE)).toEqual(LOCKED);
      sim.advanceClock(15 * 60 - 1);
      expect(await attempt(tx, ALICE)).toEqual(LOCKED);
      sim.advanceClock(1);
      expect(await attempt(tx, ALICE)).toEqual(OK);
      expect(loginsOf(ALICE.username)).toEqual({
        success: 1,
        bad_password: 5,
        bad_totp: 0,
        totp_reused: 0,
        locked: 2,
        unknown_user: 0,
      });
    });

    it("counts wrong passwords, wrong codes and reused steps alike", async () => {
      await authorizeViaPages(sim, new Browser());
      const used = await totpAt(sim);
      const tx = await openTransaction();

      expect(await attempt(tx, { ...ALICE, totp: used })).toEqual(BAD_CODE);
      expect(await attempt(tx, wrongPassword)).toEqual(BAD_PASSWORD);
      expect(await attempt(tx, { ...ALICE, totp: "000000" })).toEqual(BAD_CODE);
      expect(await attempt(tx, wrongPassword)).toEqual(BAD_PASSWORD);
      expect(await attempt(tx, { ...ALICE, totp: "999999" })).toEqual(BAD_CODE);

      sim.advanceClock(30);
      expect(await attempt(tx, ALICE)).toEqual(LOCKED);
    });

    it("a success resets the streak", async () => {
      const tx = await openTransaction();
      for (let i = 0; i < 4; i++) await attempt(tx, wrongPassword);
      expect(await attempt(tx, ALICE)).toEqual(OK);

      sim.advanceClock(30);
      const next = await openTransaction();
      for (let i = 0; i < 4; i++) await attempt(next, wrongPassword);
      expect(await attempt(next, ALICE)).toEqual(OK);
    });

    it("attempts while locked neither extend the lock nor count toward the next one", async () => {
      const tx = await openTransaction();
      for (let i = 0; i < 5; i++) await attempt(tx, wrongPassword);
      for (let i = 0; i < 5; i++) expect(await attempt(tx, wrongPassword)).toEqual(LOCKED);

      sim.advanceClock(15 * 60);
      for (let i = 0; i < 4; i++) expect(await attempt(tx, wrongPassword)).toEqual(BAD_PASSWORD);
      expect(await attempt(tx, ALICE)).toEqual(OK);
    });

    it("locks one user only", async () => {
      const tx = await openTransaction();
      for (let i = 0; i < 5; i++) await attempt(tx, wrongPassword);

      const bob = await openTransaction(BOB.username);
      expect(await attempt(bob, { ...BOB, totp: await totpAt(sim, BOB.totpSecret) })).toEqual(OK);
      expect(await attempt(tx, ALICE)).toEqual(LOCKED);
    });

    it("a reset unlocks", async () => {
      const tx = await openTransaction();
      for (let i = 0; i < 5; i++) await attempt(tx, wrongPassword);

      sim.reset();

      expect(await attempt(await openTransaction(), ALICE)).toEqual(OK);
    });
  });

  it("counts every outcome in the totals", async () => {
    const tx = await openTransaction();
    await attempt(tx, wrongPassword);
    await attempt(tx, { ...ALICE, totp: "000000" });
    await attempt(tx, ALICE);
    await attempt(tx, ALICE);
    await attempt(tx, { username: "ghost", password: "x" });

    expect(sim.stats().totals.logins).toEqual({
      success: 1,
      bad_password: 1,
      bad_totp: 1,
      totp_reused: 1,
      locked: 0,
      unknown_user: 1,
    });
  });
});
