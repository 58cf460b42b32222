import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type LoginPage, PAGE_PARTS } from "../../lib/sim/page-parts.js";
import type { Simulator } from "../../lib/sim/server.js";
import { ALICE, control, getMe, login, startTestSimulator } from "./helpers.js";
import {
  authorizeViaPages,
  authUrl,
  Browser,
  b2cUrls,
  formOf,
  html,
  openB2cPage,
  type PageResponse,
  postSelfAsserted,
  settingsOf,
  totpAt,
} from "./login-helpers.js";

const ALL_VARIANTS = Object.entries(PAGE_PARTS).flatMap(([page, parts]) =>
  parts.map((part) => [page as LoginPage, part] as const),
);

function hasPart(response: PageResponse, page: LoginPage, part: string): boolean {
  const root = html(response);
  if (part === "form") return root.querySelector("form") !== null;
  if (part === "SETTINGS") return settingsOf(response) !== undefined;
  if (page === "b2c" && ["csrf", "transId", "hosts"].includes(part))
    return part in (settingsOf(response) ?? {});
  return root.querySelector(`[name="${part}"]`) !== null;
}

describe("break_page fault", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  /** Serves `page` once, from a fresh browser, going through the pages before it as a client does. */
  async function reach(page: LoginPage): Promise<PageResponse> {
    const browser = new Browser();
    const auth = await browser.get(authUrl(sim));
    if (page === "start") return browser.get(auth.location ?? "");
    if (page === "consent") {
      sim.advanceClock(30); // every login needs a fresh TOTP step
      const start = await browser.get(auth.location ?? "");
      const posted = await browser.post(formOf(start).action, {
        ...formOf(start).fields,
        LoginForm$UserName: ALICE.username,
      });
      const b2c = await browser.get(posted.location ?? "");
      const settings = settingsOf(b2c) as Parameters<typeof b2cUrls>[1];
      await postSelfAsserted(browser, b2c, settings, { ...ALICE, totp: await totpAt(sim) });
      const confirmed = await browser.get(b2cUrls(b2c, settings).confirmed);
      const signedIn = await browser.post(formOf(confirmed).action, formOf(confirmed).fields);
      return browser.get(signedIn.location ?? "");
    }
    const { page: b2c, settings } = await openB2cPage(browser, auth.location ?? "", ALICE.username);
    if (page === "b2c") return b2c;
    sim.advanceClock(30);
    await postSelfAsserted(browser, b2c, settings, { ...ALICE, totp: await totpAt(sim) });
    return browser.get(b2cUrls(b2c, settings).confirmed);
  }

  it.each(ALL_VARIANTS)(
    "page %s without %s: served once without that part, then whole again",
    async (page, part) => {
      const served = await reach(page);
      expect(served.status).toBe(200);
      for (const other of PAGE_PARTS[page])
        expect(hasPart(served, page, other), `${other} before the fault`).toBe(true);

      sim.addFault({ kind: "break_page", page, missing: part });
      const broken = await reach(page);

      expect(broken.status).toBe(200);
      expect(hasPart(broken, page, part)).toBe(false);
      for (const other of PAGE_PARTS[page].filter((name) => name !== part && name !== "SETTINGS")) {
        // Without the SETTINGS script its keys are gone too; everything else stays.
        if (part === "SETTINGS" && ["csrf", "transId", "hosts"].includes(other)) continue;
        expect(hasPart(broken, page, other), `${other} should stay`).toBe(true);
      }
      expect(hasPart(await reach(page), page, part)).toBe(true);
      expect((await control(sim, "GET", "/_sim/faults")).body).toEqual({ faults: [] });
    },
  );

  it("a form left out keeps its inputs, outside any form", async () => {
    sim.addFault({ kind: "break_page", page: "start", missing: "form" });

    const broken = await reach("start");

    expect(html(broken).querySelector("form")).toBeNull();
    expect(html(broken).querySelector('input[name="__RequestVerificationToken"]')).not.toBeNull();
  });

  it("breaks the page count times, and only the page named", async () => {
    sim.addFault({ kind: "break_page", page: "b2c", missing: "SETTINGS", count: 2 });

    expect(hasPart(await reach("start"), "start", "form")).toBe(true);
    expect(settingsOf(await reach("b2c"))).toBeUndefined();
    expect(settingsOf(await reach("b2c"))).toBeUndefined();
    expect(settingsOf(await reach("b2c"))).toBeDefined();
  });

  it("is listed with the other faults, cleared by DELETE and by reset", async () => {
    await control(sim, "POST", "/_sim/faults", { kind: "status", endpoint: "token" });
    const created = await control(sim, "POST", "/_sim/faults", {
      kind: "break_page",
      page: "consent",
      missing: "consent",
      count: 3,
    });

    expect(created.status).toBe(201);
    const listed = (await control(sim, "GET", "/_sim/faults")).body.faults;
    expect(listed).toEqual([
      expect.objectContaining({ kind: "status" }),
      { id: created.body.id, kind: "break_page", page: "consent", missing: "consent", count: 3 },
    ]);
    expect((await control(sim, "DELETE", "/_sim/faults")).body).toEqual({ removed: 2 });
    sim.addFault({ kind: "break_page", page: "start", missing: "form" });
    sim.reset();
    expect(hasPart(await reach("start"), "start", "form")).toBe(true);
  });

  it("does not touch the token and Me endpoints, and their faults do not touch the pages", async () => {
    sim.addFault({ kind: "break_page", page: "start", missing: "form" });
    const tokens = await login(sim);
    expect((await getMe(sim, tokens.accessToken)).status).toBe(200);
    expect(hasPart(await reach("start"), "start", "form")).toBe(false);

    sim.addFault({ kind: "status", status: 503, count: 5 });
    const flow = await authorizeViaPages(sim, new Browser());
    expect(flow.location).toContain("code=");
    expect((await getMe(sim, tokens.accessToken)).status).toBe(503);
  });

  it("a confirmed page without its code leads to a refused signin-azureb2c", async () => {
    sim.addFault({ kind: "break_page", page: "confirmed", missing: "code" });
    const browser = new Browser();
    const auth = await browser.get(authUrl(sim));
    const { page, settings } = await openB2cPage(browser, auth.location ?? "", ALICE.username);
    await postSelfAsserted(browser, page, settings, { ...ALICE, totp: await totpAt(sim) });
    const confirmed = await browser.get(b2cUrls(page, settings).confirmed);

    const signedIn = await browser.post(formOf(confirmed).action, formOf(confirmed).fields);

    expect(signedIn.status).toBe(400);
    expect(html(signedIn).querySelector("#error")?.text).toMatch(/invalid/);
  });

  it.each([
    [
      "no page",
      { kind: "break_page", missing: "form" },
      /"page" must be one of start, b2c, confirmed, consent/,
    ],
    ["an unknown page", { kind: "break_page", page: "home", missing: "form" }, /"page"/],
    ["no missing", { kind: "break_page", page: "start" }, /"missing"/],
    [
      "a part of another page",
      { kind: "break_page", page: "start", missing: "SETTINGS" },
      /"missing" for page start must be one of form, __RequestVerificationToken, LoginForm\$UserName/,
    ],
    ["a count of 0", { kind: "break_page", page: "start", missing: "form", count: 0 }, /count/],
    [
      "a probability",
      { kind: "break_page", page: "start", missing: "form", probability: 0.5 },
      /unknown field/,
    ],
    ["a client", { kind: "break_page", page: "start", missing: "form", clientId: "x" }, /unknown field/],
    ["a page on another kind", { kind: "status", page: "start" }, /unknown field/],
  ])("refuses %s with a 400", async (_label, body, message) => {
    const response = await control(sim, "POST", "/_sim/faults", body);

    expect(response.status).toBe(400);
    expect(response.body.error).toBe("bad_request");
    expect(response.body.message).toMatch(message);
  });
});
