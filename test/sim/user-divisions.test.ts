import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ValidationError } from "../../lib/errors.js";
import type { Simulator } from "../../lib/sim/server.js";
import { ALICE, control, getApi, getMe, login, startTestSimulator } from "./helpers.js";

const divisionsPath = (division: number) => `/api/v1/${division}/system/Divisions?$top=1`;
const controlPath = (username: string) => `/_sim/users/${encodeURIComponent(username)}/divisions`;

describe("a user's divisions at runtime (POST /_sim/users/{username}/divisions)", () => {
  let sim: Simulator;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  it("moves CurrentDivision: /current/Me and system/Divisions' Current follow, tokens issued before included", async () => {
    const tokens = await login(sim);

    const changed = await control(sim, "POST", controlPath(ALICE.username), {
      divisions: [ALICE.division, 700],
      division: 700,
    });

    expect(changed).toMatchObject({ status: 200, body: { division: 700, divisions: [700, ALICE.division] } });
    expect(changed.body.password).toBeUndefined();
    expect((await getMe(sim, tokens.accessToken)).body.d.results[0].CurrentDivision).toBe(700);
    const rows = (await getApi(sim, `/api/v1/700/system/Divisions`, tokens.accessToken)).body.d.results;
    expect(rows.map((row: { Code: number; Current: boolean }) => [row.Code, row.Current])).toEqual([
      [700, true],
      [ALICE.division, false],
    ]);
  });

  it("revokes access: the division answers 403 NoDivisionAccess and CurrentDivision moves to one the user can open", async () => {
    const tokens = await login(sim);
    expect((await getApi(sim, divisionsPath(ALICE.division), tokens.accessToken)).status).toBe(200);

    const user = sim.setUserDivisions(ALICE.username, { divisions: [800, 900] });

    expect(user).toMatchObject({ division: 800, divisions: [800, 900] });
    const refused = await getApi(sim, divisionsPath(ALICE.division), tokens.accessToken);
    expect(refused.status).toBe(403);
    expect(refused.headers.get("reason")).toBe("NoDivisionAccess");
    expect((await getApi(sim, divisionsPath(900), tokens.accessToken)).status).toBe(200);
    expect((await getMe(sim, tokens.accessToken)).body.d.results[0].CurrentDivision).toBe(800);
  });

  it("keeps a current division the new list still holds", () => {
    sim.setUserDivisions(ALICE.username, { divisions: [ALICE.division, 1] });

    expect(sim.setUserDivisions(ALICE.username, { divisions: [1, ALICE.division, 5] })).toMatchObject({
      division: ALICE.division,
    });
  });

  it.each([
    ["no field", {}, /give "division", "divisions" or both/],
    ["an unknown field", { division: 1, current: 2 }, /unknown field/],
    ["a division the user cannot open", { division: 42 }, /cannot open division 42/],
    ["both, not matching", { division: 1, divisions: [2] }, /must include "division"/],
    ["a division that is no Edm.Int32", { divisions: [0] }, /from 1 to 2147483647/],
    ["a division listed twice", { divisions: [3, 3] }, /twice/],
  ])("refuses %s with 400, changing nothing", async (_case, body, message) => {
    const answer = await control(sim, "POST", controlPath(ALICE.username), body);

    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: "bad_request", message: expect.stringMatching(message) });
    const tokens = await login(sim);
    expect((await getMe(sim, tokens.accessToken)).body.d.results[0].CurrentDivision).toBe(ALICE.division);
  });

  it("refuses an unknown user (control API: 400; Simulator: ValidationError)", async () => {
    expect((await control(sim, "POST", controlPath("nobody@example.com"), { division: 1 })).status).toBe(400);
    expect(() => sim.setUserDivisions("nobody@example.com", { division: 1 })).toThrow(ValidationError);
  });

  it("is undone by reset", async () => {
    sim.setUserDivisions(ALICE.username, { divisions: [5], division: 5 });

    sim.reset();

    const tokens = await login(sim);
    expect((await getMe(sim, tokens.accessToken)).body.d.results[0].CurrentDivision).toBe(ALICE.division);
  });
});
