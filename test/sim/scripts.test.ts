import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Simulator } from "../../lib/sim/server.js";
import {
  ALICE,
  APP,
  BOB,
  control,
  generationOf,
  getApi,
  getMe,
  login,
  OTHER_APP,
  rawRequest,
  rawTokenRequest,
  refresh,
  refreshGrant,
  startTestSimulator,
} from "./helpers.js";

const KEY = `${APP.clientId}/${ALICE.username}`;
const OLD_TOKEN = { error: "unauthorized_client", error_description: "Old refresh token used." };
const MAINTENANCE_PAGE =
  "<html><body><h1>Exact Online is even niet beschikbaar — onderhoud</h1></body></html>";
/** What an Apigee gateway answers when a backend call ran out of time (the "35 s then 500" report). */
const GATEWAY_FAULT = {
  fault: {
    faultstring: "Unresolved variable : ExtractVariables.response",
    detail: { errorcode: "steps.extractvariables.ExecutionFailed" },
  },
};
const SCOPE_VIOLATED = {
  error: { code: "", message: { lang: "", value: "Forbidden - Application Scope Violated. Cannot read" } },
};

describe("scripted answers (/_sim/scripts)", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  describe("on the token endpoint", () => {
    it("answers a bare 400 with an HTML body without processing: the same refresh token works afterwards", async () => {
      const tokens = await login(sim);
      sim.advanceClock(570);
      sim.addScript({
        endpoint: "token",
        clientId: APP.clientId,
        status: 400,
        contentType: "text/html",
        body: MAINTENANCE_PAGE,
      });

      const maintenance = await rawTokenRequest(sim, refreshGrant(tokens.refreshToken));

      expect(maintenance.status).toBe(400);
      expect(maintenance.headers["content-type"]).toBe("text/html");
      expect(maintenance.headers["cache-control"]).toBeUndefined();
      expect(maintenance.body).toBe(MAINTENANCE_PAGE);
      expect(generationOf(sim)).toBe(1);
      expect(sim.stats().chains[KEY]?.tokenRequests).toMatchObject({ scripted: 1, refreshed: 0 });
      expect((await refresh(sim, tokens.refreshToken)).status).toBe(200);
      expect(generationOf(sim)).toBe(2);
    });

    it("answers a 200 whose JSON body is an error and carries no tokens", async () => {
      const tokens = await login(sim);
      sim.advanceClock(570);
      const json = { error: "server_error", error_description: "Something went wrong" };
      sim.addScript({ endpoint: "token", clientId: APP.clientId, status: 200, json });

      const response = await refresh(sim, tokens.refreshToken);

      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
      expect(response.body).toEqual(json);
      expect(generationOf(sim)).toBe(1);
    });

    it("processes, then answers a 200 without expires_in with the new pair merged in: the chain rotated", async () => {
      const tokens = await login(sim);
      sim.advanceClock(570);
      sim.addScript({
        endpoint: "token",
        clientId: APP.clientId,
        process: true,
        mergePair: true,
        status: 200,
        json: { token_type: "bearer" },
      });

      const response = await refresh(sim, tokens.refreshToken);

      expect(response.status).toBe(200);
      expect(Object.keys(response.body).sort()).toEqual(["access_token", "refresh_token", "token_type"]);
      expect(response.body.token_type).toBe("bearer");
      expect(generationOf(sim)).toBe(2);
      expect(sim.stats().chains[KEY]?.tokenRequests).toMatchObject({ scripted: 1, refreshed: 0, issued: 1 });
      expect((await getMe(sim, response.body.access_token)).status).toBe(200);
      expect((await refresh(sim, tokens.refreshToken)).body).toEqual(OLD_TOKEN);
      sim.advanceClock(570);
      expect((await refresh(sim, response.body.refresh_token)).status).toBe(200);
    });

    it("processes a slow call, then answers 500 with a gateway fault body: the refresh token sent is dead", async () => {
      const tokens = await login(sim);
      sim.advanceClock(570);
      sim.addFault({ kind: "latency", latencyMs: 250, endpoint: "token" });
      sim.addScript({
        endpoint: "token",
        clientId: APP.clientId,
        process: true,
        status: 500,
        json: GATEWAY_FAULT,
      });

      const startedMs = performance.now();
      const response = await refresh(sim, tokens.refreshToken);

      expect(performance.now() - startedMs).toBeGreaterThanOrEqual(240);
      expect(response.status).toBe(500);
      expect(response.body).toEqual(GATEWAY_FAULT);
      expect(generationOf(sim)).toBe(2);
      expect((await refresh(sim, tokens.refreshToken)).body).toEqual(OLD_TOKEN);
    });

    it("sends the given headers verbatim, e.g. a 403 with a Reason header", async () => {
      const tokens = await login(sim);
      sim.addScript({
        endpoint: "token",
        clientId: APP.clientId,
        status: 403,
        headers: { Reason: "BlockedUser", "X-Exact-Trace": "a b\tc" },
        body: "Forbidden",
      });

      const response = await rawTokenRequest(sim, refreshGrant(tokens.refreshToken));

      expect(response.status).toBe(403);
      expect(response.headers.reason).toBe("BlockedUser");
      expect(response.headers["x-exact-trace"]).toBe("a b\tc");
      expect(response.headers["content-type"]).toBe("text/plain; charset=utf-8");
      expect(response.body).toBe("Forbidden");
    });

    it("answers the next N requests of its client only, scripts in the order they were created, then Exact's rules", async () => {
      const tokens = await login(sim);
      const other = await login(sim, OTHER_APP);
      sim.addScript({ endpoint: "token", clientId: APP.clientId, count: 2, status: 503, body: "busy" });
      sim.addScript({ endpoint: "token", clientId: APP.clientId, status: 502 });

      const otherAnswer = await refresh(sim, other.refreshToken, OTHER_APP);
      const answers = [];
      for (let i = 0; i < 4; i++) {
        answers.push(await rawTokenRequest(sim, refreshGrant(tokens.refreshToken)));
      }

      expect(otherAnswer.body.error).toBe("access_denied");
      expect(answers.map((answer) => answer.status)).toEqual([503, 503, 502, 400]);
      expect(answers[2]?.body).toBe("");
      expect(answers[2]?.headers["content-type"]).toBeUndefined();
      expect(JSON.parse(answers[3]?.body ?? "{}").error).toBe("access_denied");
      expect(sim.stats().totals.tokenRequests).toMatchObject({ scripted: 3, too_early: 2 });
    });

    it("counts a scripted 4xx toward the error limit, and leaves the script to a request the limit blocked", async () => {
      const tokens = await login(sim);
      sim.addScript({
        endpoint: "token",
        clientId: APP.clientId,
        count: 11,
        status: 400,
        body: "Bad Request",
      });

      const statuses: number[] = [];
      for (let i = 0; i < 11; i++) {
        statuses.push((await rawTokenRequest(sim, refreshGrant(tokens.refreshToken))).status);
      }

      expect(statuses).toEqual([...Array(10).fill(400), 429]);
      expect(sim.stats().chains[KEY]?.tokenRequests).toMatchObject({ scripted: 10, error_limited: 1 });
      expect((await control(sim, "GET", "/_sim/scripts")).body.scripts).toEqual([
        expect.objectContaining({ endpoint: "token", clientId: APP.clientId, count: 1 }),
      ]);
    });

    it("does not count a script's 4xx with counted false (an answer Exact's error counter never sees)", async () => {
      const tokens = await login(sim);
      sim.addScript({
        endpoint: "token",
        clientId: APP.clientId,
        count: 12,
        counted: false,
        status: 400,
        contentType: "text/html",
        body: "<html>maintenance</html>",
      });

      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) {
        statuses.push((await rawTokenRequest(sim, refreshGrant(tokens.refreshToken))).status);
      }
      sim.advanceClock(570);
      const after = await rawTokenRequest(sim, refreshGrant(tokens.refreshToken));

      expect(statuses).toEqual(Array(12).fill(400));
      expect(after.status).toBe(200);
      expect(sim.stats().chains[KEY]?.tokenRequests).toMatchObject({ scripted: 12, refreshed: 1 });
      expect(sim.stats().chains[KEY]?.tokenRequests.error_limited ?? 0).toBe(0);
    });

    it("leaves the script for the next request when a fault answers or drops this one", async () => {
      const tokens = await login(sim);
      sim.advanceClock(570);
      sim.addFault({ kind: "status", status: 503, endpoint: "token" });
      sim.addFault({ kind: "rotate_then_drop", endpoint: "token" });
      sim.addScript({ endpoint: "token", clientId: APP.clientId, status: 400, body: "maintenance" });

      const faulted = await refresh(sim, tokens.refreshToken);
      const dropped = await rawTokenRequest(sim, refreshGrant(tokens.refreshToken)).catch(
        (error: NodeJS.ErrnoException) => error.code,
      );
      const scripted = await rawTokenRequest(sim, refreshGrant(tokens.refreshToken));

      expect(faulted.status).toBe(503);
      expect(dropped).toBe("ECONNRESET");
      expect(generationOf(sim)).toBe(2);
      expect([scripted.status, scripted.body]).toEqual([400, "maintenance"]);
    });
  });

  describe("on /api/v1/current/Me", () => {
    it.each(["BlockedUser", "InactiveUser", "LicenseExpired", "NoDivisionAccess"])(
      "answers 403 with Reason: %s while the token is valid, then Exact's answer again",
      async (reason) => {
        const tokens = await login(sim);
        sim.addScript({
          endpoint: "me",
          clientId: APP.clientId,
          status: 403,
          headers: { Reason: reason },
          json: { error: { code: "", message: { lang: "", value: "Forbidden" } } },
        });

        const refused = await getMe(sim, tokens.accessToken);
        const after = await getMe(sim, tokens.accessToken);

        expect(refused.status).toBe(403);
        expect(refused.headers.get("reason")).toBe(reason);
        expect(after.status).toBe(200);
        expect(sim.stats().chains[KEY]?.meRequests).toMatchObject({ scripted: 1, ok: 1 });
      },
    );

    it("answers Application Scope Violated to every user of one client ID, and only of that one", async () => {
      const alice = await login(sim);
      const bob = await login(sim, APP, BOB.username);
      const aliceElsewhere = await login(sim, OTHER_APP);
      sim.addScript({ endpoint: "me", clientId: APP.clientId, count: 2, status: 403, json: SCOPE_VIOLATED });

      const answers = [
        await getMe(sim, aliceElsewhere.accessToken),
        await getMe(sim, alice.accessToken),
        await getMe(sim, bob.accessToken),
      ];

      expect(answers.map((answer) => [answer.status, answer.body])).toEqual([
        [200, expect.objectContaining({ d: expect.anything() })],
        [403, SCOPE_VIOLATED],
        [403, SCOPE_VIOLATED],
      ]);
    });
  });

  describe("on the REST API (/api/v1/{division}/…)", () => {
    const ACCOUNTS = `/api/v1/${ALICE.division}/crm/Accounts`;

    it("answers 403 with Reason: NoDivisionAccess for a division the user can open, uncharged, then Exact's answer again", async () => {
      const tokens = await login(sim);
      sim.addScript({
        endpoint: "api",
        clientId: APP.clientId,
        status: 403,
        headers: { Reason: "NoDivisionAccess" },
        json: { error: { code: "", message: { lang: "", value: "Forbidden" } } },
      });

      const refused = await getApi(sim, `/api/v1/${ALICE.division}/system/Divisions`, tokens.accessToken);
      const after = await getApi(sim, ACCOUNTS, tokens.accessToken);

      expect(refused.status).toBe(403);
      expect(refused.headers.get("reason")).toBe("NoDivisionAccess");
      expect(refused.headers.get("x-ratelimit-remaining")).toBeNull();
      expect(after.status).toBe(200);
      // The scripted call was not charged: the day's budget lost one call, the ok one.
      expect(after.headers.get("x-ratelimit-remaining")).toBe(String(5000 - 1));
      expect(sim.stats().api[`${APP.clientId}/${ALICE.division}`]).toMatchObject({ scripted: 1, ok: 1 });
    });

    it('answers a 401 HTML "Object moved" page (a truncated token) to the next N calls of one app only', async () => {
      const objectMoved =
        '<html><head><title>Object moved</title></head><body><h2>Object moved to <a href="/docs/Login.aspx">here</a>.</h2></body></html>';
      const alice = await login(sim);
      const aliceElsewhere = await login(sim, OTHER_APP);
      sim.addScript({
        endpoint: "api",
        clientId: APP.clientId,
        count: 2,
        status: 401,
        contentType: "text/html; charset=utf-8",
        body: objectMoved,
      });

      const answers = [];
      for (const accessToken of [
        aliceElsewhere.accessToken,
        alice.accessToken,
        alice.accessToken,
        alice.accessToken,
      ]) {
        answers.push(
          await rawRequest(`${sim.url}${ACCOUNTS}`, { headers: { Authorization: `Bearer ${accessToken}` } }),
        );
      }

      expect(answers.map((answer) => [answer.status, answer.headers["content-type"]])).toEqual([
        [200, expect.stringContaining("application/json")],
        [401, "text/html; charset=utf-8"],
        [401, "text/html; charset=utf-8"],
        [200, expect.stringContaining("application/json")],
      ]);
      expect(answers[1]?.body).toBe(objectMoved);
      expect(sim.stats().totals.apiRequests).toMatchObject({ scripted: 2, ok: 2 });
    });
  });

  describe("GET and DELETE /_sim/scripts", () => {
    it("lists scripts with what is left of them, deletes them all, and reset removes them too", async () => {
      const tokens = await login(sim);
      const created = await control(sim, "POST", "/_sim/scripts", {
        endpoint: "me",
        clientId: APP.clientId,
        count: 3,
        status: 403,
        headers: { Reason: "InactiveUser" },
      });
      await getMe(sim, tokens.accessToken);
      sim.addScript({ endpoint: "token", clientId: OTHER_APP.clientId, status: 400, body: "x" });

      const listed = await control(sim, "GET", "/_sim/scripts");
      const deleted = await control(sim, "DELETE", "/_sim/scripts");
      sim.addScript({ endpoint: "me", clientId: APP.clientId, status: 500 });
      sim.reset();

      expect(created.status).toBe(201);
      expect(created.body.id).toMatch(/^s\d+$/);
      expect(listed.body.scripts).toEqual([
        {
          id: created.body.id,
          endpoint: "me",
          clientId: APP.clientId,
          count: 2,
          process: false,
          mergePair: false,
          counted: true,
          status: 403,
          headers: { Reason: "InactiveUser" },
        },
        expect.objectContaining({ endpoint: "token", clientId: OTHER_APP.clientId, count: 1, body: "x" }),
      ]);
      expect(deleted.body).toEqual({ removed: 2 });
      expect((await control(sim, "GET", "/_sim/scripts")).body).toEqual({ scripts: [] });
      expect((await getMe(sim, (await login(sim)).accessToken)).status).toBe(200);
    });
  });

  describe("POST /_sim/scripts validation", () => {
    const base = { endpoint: "token", clientId: APP.clientId, status: 400 };

    it.each([
      ["no endpoint", { clientId: APP.clientId, status: 400 }, /"endpoint" must be "token", "me" or "api"/],
      ["an unknown endpoint", { ...base, endpoint: "auth" }, /"endpoint" must be "token", "me" or "api"/],
      ["no clientId", { endpoint: "token", status: 400 }, /"clientId" must be a non-empty string/],
      ["an unknown clientId", { ...base, clientId: "typo" }, /unknown clientId "typo"/],
      ["no status", { endpoint: "token", clientId: APP.clientId }, /"status" is required/],
      ["a 1xx status", { ...base, status: 101 }, /"status" must be an integer from 200 to 599/],
      ["a status above 599", { ...base, status: 600 }, /"status" must be an integer from 200 to 599/],
      ["a bodiless status", { ...base, status: 304 }, /"status" 304 carries no body/],
      ["a count of 0", { ...base, count: 0 }, /"count" must be an integer/],
      ["headers as a list", { ...base, headers: [["Reason", "x"]] }, /"headers" must be an object/],
      ["a header name that is no token", { ...base, headers: { "Bad Name": "x" } }, /not a valid HTTP token/],
      [
        "a header value with a newline",
        { ...base, headers: { Reason: "a\r\nSet-Cookie: x" } },
        /valid HTTP header value/,
      ],
      ["a header value that is no string", { ...base, headers: { Reason: 5 } }, /valid HTTP header value/],
      ["a header value with outer spaces", { ...base, headers: { Reason: " x" } }, /valid HTTP header value/],
      ["Content-Length", { ...base, headers: { "Content-Length": "5" } }, /set by the simulator/],
      [
        "Content-Type as a header",
        { ...base, headers: { "content-type": "text/html" } },
        /use "contentType"/,
      ],
      ["a header given twice", { ...base, headers: { Reason: "a", reason: "b" } }, /given twice/],
      ["a contentType with a newline", { ...base, contentType: "text/html\n" }, /"contentType" must be/],
      ["body and json", { ...base, body: "x", json: {} }, /give "body" or "json", not both/],
      ["a body that is no string", { ...base, body: { a: 1 } }, /"body" must be a string/],
      [
        "process on me",
        { ...base, endpoint: "me", process: true },
        /"process" only goes with endpoint "token"/,
      ],
      [
        "mergePair without process",
        { ...base, mergePair: true, json: {} },
        /"mergePair" needs "process": true/,
      ],
      ["counted not a boolean", { ...base, counted: "no" }, /"counted" must be true or false/],
      [
        "mergePair with a text body",
        { ...base, process: true, mergePair: true, body: "{}" },
        /needs "json" to be an object/,
      ],
      [
        "mergePair with a JSON array",
        { ...base, process: true, mergePair: true, json: [] },
        /needs "json" to be an object/,
      ],
      ["an unknown field", { ...base, reason: "x" }, /unknown field\(s\) "reason"/],
    ])("answers 400 for %s and registers nothing", async (_case, body, message) => {
      const response = await control(sim, "POST", "/_sim/scripts", body);

      expect(response.status).toBe(400);
      expect(response.body).toEqual({ error: "bad_request", message: expect.stringMatching(message) });
      expect((await control(sim, "GET", "/_sim/scripts")).body).toEqual({ scripts: [] });
    });

    it.each([
      ["a body over 16 KiB", { body: "é".repeat(8 * 1024 + 1) }, /"body" is larger than 16384 bytes/],
      [
        "a JSON value over 16 KiB",
        { json: { text: "x".repeat(16 * 1024) } },
        /"json" is larger than 16384 bytes/,
      ],
      ["a value JSON cannot carry", { json: 1n }, /"json" must be a JSON value/],
    ])("refuses %s it cannot send, through addScript too", (_case, extra, message) => {
      expect(() =>
        sim.addScript({ endpoint: "token", clientId: APP.clientId, status: 400, ...extra }),
      ).toThrow(message);
    });
  });

  it("keeps a script of one client away from requests that name no client", async () => {
    sim.addScript({ endpoint: "me", clientId: APP.clientId, status: 500 });

    const response = await rawRequest(`${sim.url}/api/v1/current/Me`, {
      headers: { Authorization: "Bearer simAT!never!issued" },
    });

    expect(response.status).toBe(401);
    expect((await control(sim, "GET", "/_sim/scripts")).body.scripts).toHaveLength(1);
  });
});
