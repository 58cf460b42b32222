import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import { ALICE, APP, BOB, getApi, login, OTHER_APP, refresh, startTestSimulator } from "./helpers.js";

const UNAUTHORIZED = { error: { code: "", message: { lang: "", value: "Unauthorized" } } };
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ACCOUNTS = `/api/v1/${ALICE.division}/crm/Accounts`;
const CAROL = {
  username: "carol@example.com",
  password: "carol-password",
  totpSecret: "GEZDGNBVGY3TQOJQ",
  division: 200,
  divisions: [300, 100, 200],
};

// biome-ignore lint/suspicious/noExplicitAny: OData rows are inspected field by field
type Row = any;

/** Every row of a collection, following `__next`; also the size of each page. */
async function allPages(
  sim: Simulator,
  path: string,
  accessToken: string,
): Promise<{ rows: Row[]; pageSizes: number[] }> {
  const rows: Row[] = [];
  const pageSizes: number[] = [];
  let next: string | undefined = path;
  while (next !== undefined) {
    const response = await getApi(sim, next, accessToken);
    expect(response.status).toBe(200);
    rows.push(...response.body.d.results);
    pageSizes.push(response.body.d.results.length);
    next = response.body.d.__next;
  }
  return { rows, pageSizes };
}

describe("REST API /api/v1/{division}/…", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  describe("GET crm/Accounts", () => {
    it("answers Exact's OData shape: 60 accounts, each with its metadata, and an absolute __next", async () => {
      const tokens = await login(sim);

      const response = await getApi(sim, ACCOUNTS, tokens.accessToken);

      expect(response.status).toBe(200);
      const { results, __next } = response.body.d;
      expect(results).toHaveLength(60);
      expect(__next).toMatch(
        new RegExp(
          `^${sim.url}/api/v1/${ALICE.division}/crm/Accounts\\?\\$skiptoken=guid'${results[59].ID}'$`,
        ),
      );
      expect(results[0]).toEqual({
        __metadata: {
          uri: `${sim.url}/api/v1/${ALICE.division}/crm/Accounts(guid'${results[0].ID}')`,
          type: "Exact.Web.Api.Models.Account",
        },
        ID: expect.stringMatching(GUID),
        Code: expect.stringMatching(/^ *\d+$/),
        Name: expect.any(String),
        City: expect.any(String),
        Country: "NL",
        Email: expect.stringMatching(/^info@account-\d+\.example$/),
        Status: "C",
        IsSupplier: expect.any(Boolean),
        Created: expect.stringMatching(/^\/Date\(\d+\)\/$/),
      });
      expect(results[0].Code).toHaveLength(18);
    });

    it.each([
      ["alice (division 654321)", ALICE.username, 171, [60, 60, 51]],
      ["bob (division 123456)", BOB.username, 206, [60, 60, 60, 26]],
    ])(
      "pages %s through 150 + division mod 100 accounts, each once, in ID order",
      async (_case, username, count, sizes) => {
        const tokens = await login(sim, APP, username);
        const division = username === ALICE.username ? ALICE.division : 123456;

        const { rows, pageSizes } = await allPages(
          sim,
          `/api/v1/${division}/crm/Accounts`,
          tokens.accessToken,
        );

        const ids = rows.map((row) => row.ID);
        expect(pageSizes).toEqual(sizes);
        expect(new Set(ids).size).toBe(count);
        expect(ids).toEqual([...ids].sort());
        expect(new Set(rows.map((row) => row.Code.trim()))).toEqual(
          new Set(Array.from({ length: count }, (_, index) => String(index + 1))),
        );
      },
    );

    it("serves the same accounts for a division on every start, and other accounts for another division", async () => {
      const again = await startTestSimulator();
      try {
        const first = await getApi(sim, ACCOUNTS, (await login(sim)).accessToken);
        const second = await getApi(again, ACCOUNTS, (await login(again)).accessToken);
        const bobs = await getApi(
          sim,
          "/api/v1/123456/crm/Accounts",
          (await login(sim, APP, BOB.username)).accessToken,
        );

        const strip = (rows: Row[]): Row[] => rows.map(({ __metadata: _metadata, ...row }) => row);
        expect(strip(second.body.d.results)).toEqual(strip(first.body.d.results));
        expect(bobs.body.d.results[0].ID).not.toBe(first.body.d.results[0].ID);
      } finally {
        await again.close();
      }
    });

    it("honours $top across pages and stops paging when it is reached", async () => {
      const tokens = await login(sim);

      const five = await getApi(sim, `${ACCOUNTS}?$top=5`, tokens.accessToken);
      const none = await getApi(sim, `${ACCOUNTS}?$top=0`, tokens.accessToken);
      const hundred = await allPages(sim, `${ACCOUNTS}?$top=100`, tokens.accessToken);
      const firstOfHundred = await getApi(sim, `${ACCOUNTS}?$top=100`, tokens.accessToken);

      expect(five.body.d.results).toHaveLength(5);
      expect(five.body.d.__next).toBeUndefined();
      expect(none.body.d).toEqual({ results: [] });
      expect(hundred.pageSizes).toEqual([60, 40]);
      expect(firstOfHundred.body.d.__next).toMatch(/\?\$top=40&\$skiptoken=guid'[0-9a-f-]{36}'$/);
    });

    it("carries other query options into __next, and ignores them", async () => {
      const tokens = await login(sim);

      const response = await getApi(
        sim,
        `${ACCOUNTS}?$select=ID,Name&$filter=Name eq 'x'`,
        tokens.accessToken,
      );

      expect(response.body.d.results).toHaveLength(60);
      expect(response.body.d.__next).toMatch(/\?\$select=ID,Name&\$filter=Name%20eq%20'x'&\$skiptoken=guid'/);
    });

    it.each([
      ["$top=-1", "$top must be a whole number."],
      ["$top=ten", "$top must be a whole number."],
      ["$top=1&$top=2", "Parameter $top given more than once."],
      ["$skiptoken=42", "Invalid $skiptoken."],
      ["$skiptoken=guid'nope'", "Invalid $skiptoken."],
    ])("answers 400 for %s, with the rate-limit headers of a counted call", async (query, message) => {
      const tokens = await login(sim);

      const response = await getApi(sim, `${ACCOUNTS}?${query}`, tokens.accessToken);

      expect(response.status).toBe(400);
      expect(response.body).toEqual({ error: { code: "", message: { lang: "", value: message } } });
      expect(response.headers.get("x-ratelimit-remaining")).toBe("4999");
      expect(sim.stats().api[`${APP.clientId}/${ALICE.division}`]?.bad_request).toBe(1);
    });

    it("is reachable in any case of the path, for GET only", async () => {
      const tokens = await login(sim);
      const headers = { Authorization: `Bearer ${tokens.accessToken}` };

      const lower = await fetch(`${sim.url}/api/v1/${ALICE.division}/CRM/accounts`, { headers });
      const posted = await fetch(`${sim.url}${ACCOUNTS}`, { method: "POST", headers, body: "{}" });

      expect(lower.status).toBe(200);
      expect(posted.status).toBe(404);
    });
  });

  describe("GET system/Divisions", () => {
    it("lists the divisions the user can open, by Code, marking the current one", async () => {
      sim.addUser(CAROL);
      const tokens = await login(sim, APP, CAROL.username);

      const response = await getApi(sim, "/api/v1/200/system/Divisions", tokens.accessToken);

      expect(response.status).toBe(200);
      expect(response.body.d.__next).toBeUndefined();
      expect(response.body.d.results).toEqual(
        [100, 200, 300].map((code) => ({
          __metadata: {
            uri: `${sim.url}/api/v1/200/system/Divisions(${code})`,
            type: "Exact.Web.Api.System.Division",
          },
          Code: code,
          Current: code === 200,
          Description: `Division ${code}`,
          Hid: code,
        })),
      );
    });

    it("defaults a user's divisions to the current one", async () => {
      const tokens = await login(sim);

      const response = await getApi(sim, `/api/v1/${ALICE.division}/system/Divisions`, tokens.accessToken);

      expect(response.body.d.results.map((row: Row) => [row.Code, row.Current])).toEqual([
        [ALICE.division, true],
      ]);
    });

    it("pages divisions with a numeric $skiptoken", async () => {
      const divisions = Array.from({ length: 70 }, (_, index) => 1000 + index);
      sim.addUser({ ...CAROL, division: 1000, divisions });
      const tokens = await login(sim, APP, CAROL.username);

      const first = await getApi(sim, "/api/v1/1000/system/Divisions", tokens.accessToken);
      const { rows, pageSizes } = await allPages(sim, "/api/v1/1000/system/Divisions", tokens.accessToken);

      expect(first.body.d.__next).toBe(`${sim.url}/api/v1/1000/system/Divisions?$skiptoken=1059`);
      expect(pageSizes).toEqual([60, 10]);
      expect(rows.map((row) => row.Code)).toEqual(divisions);
    });
  });

  describe("access", () => {
    it.each([
      ["no Authorization header", undefined],
      ["an unknown token", "simAT!not!issued"],
    ])("answers 401 for %s and counts it in the totals only", async (_case, token) => {
      await login(sim);

      const response = await getApi(sim, ACCOUNTS, token);

      expect(response.status).toBe(401);
      expect(response.body).toEqual(UNAUTHORIZED);
      expect(sim.stats().api).toEqual({});
      expect(sim.stats().totals.apiRequests.unauthorized).toBe(1);
    });

    it("answers 401 for an expired access token, under its app and the division", async () => {
      const tokens = await login(sim);
      sim.advanceClock(600);

      const response = await getApi(sim, ACCOUNTS, tokens.accessToken);

      expect(response.status).toBe(401);
      expect(response.headers.get("x-ratelimit-limit")).toBeNull();
      expect(sim.stats().api[`${APP.clientId}/${ALICE.division}`]?.unauthorized).toBe(1);
    });

    it("answers 401 for an access token revoked by a refresh when old tokens are revoked (variant)", async () => {
      sim.setVariants({ oldAccessTokenValidAfterRefresh: false });
      const tokens = await login(sim);
      sim.advanceClock(570);
      const refreshed = await refresh(sim, tokens.refreshToken);

      expect((await getApi(sim, ACCOUNTS, tokens.accessToken)).status).toBe(401);
      expect((await getApi(sim, ACCOUNTS, refreshed.body.access_token)).status).toBe(200);
    });

    it("answers 403 with Reason NoDivisionAccess for a division the user cannot open, without charging it", async () => {
      sim.addUser(CAROL);
      const tokens = await login(sim, APP, CAROL.username);

      const refused = await getApi(sim, `/api/v1/${ALICE.division}/crm/Accounts`, tokens.accessToken);
      const allowed = await getApi(sim, "/api/v1/300/crm/Accounts", tokens.accessToken);

      expect(refused.status).toBe(403);
      expect(refused.headers.get("reason")).toBe("NoDivisionAccess");
      expect(refused.body).toEqual({ error: { code: "", message: { lang: "", value: "Forbidden" } } });
      expect(refused.headers.get("x-ratelimit-remaining")).toBeNull();
      expect(allowed.status).toBe(200);
      expect(sim.stats().api).toEqual({
        [`${APP.clientId}/${ALICE.division}`]: expect.objectContaining({ no_division_access: 1, ok: 0 }),
        [`${APP.clientId}/300`]: expect.objectContaining({ ok: 1 }),
      });
    });

    it("counts calls per (app, division) in the stats, whichever user made them", async () => {
      sim.addUser({ ...CAROL, division: ALICE.division, divisions: [ALICE.division] });
      const alice = await login(sim);
      const carol = await login(sim, APP, CAROL.username);
      const aliceElsewhere = await login(sim, OTHER_APP);

      await getApi(sim, ACCOUNTS, alice.accessToken);
      await getApi(sim, ACCOUNTS, carol.accessToken);
      await getApi(sim, `/api/v1/${ALICE.division}/system/Divisions`, aliceElsewhere.accessToken);

      const { api, totals } = sim.stats();
      expect(Object.keys(api).sort()).toEqual(
        [`${APP.clientId}/${ALICE.division}`, `${OTHER_APP.clientId}/${ALICE.division}`].sort(),
      );
      expect(api[`${APP.clientId}/${ALICE.division}`]?.ok).toBe(2);
      expect(api[`${OTHER_APP.clientId}/${ALICE.division}`]?.ok).toBe(1);
      expect(totals.apiRequests.ok).toBe(3);
    });
  });
});
