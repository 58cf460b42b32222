import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, it } from "vitest";
import { LEAK_PATTERN } from "../support/leak-guard.js";
import { type PythonTool, requirePythonTool } from "../support/python-tools.js";
import { describeWithTool } from "../support/tool-gate.js";
import { type CaseResult, CaseRun, type Door } from "./case-run.js";
import { Fault, faultsFor } from "./fault-plan.js";
import { World } from "./world.js";

/** The campaign's test files (test/campaign/<name>.test.ts); the last one to finish prints the total. */
export const CAMPAIGN_FILES = [
  "vend",
  "refresh",
  "refresh-queue",
  "login",
  "onboarding",
  "authorization",
  "import",
  "rejected",
  "bad-days-app",
  "bad-days-user",
  "bad-days-division",
] as const;
export type CampaignFile = (typeof CAMPAIGN_FILES)[number];

interface Tally {
  doors: number;
  calls: number;
  cases: number;
  byFault: Record<Fault, number>;
}

const emptyTally = (): Tally => ({
  doors: 0,
  calls: 0,
  cases: 0,
  byFault: { exception: 0, hang: 0, crash: 0, lost: 0 },
});

function describeTally(name: string, tally: Tally): string {
  const { exception, hang, crash, lost } = tally.byFault;
  return (
    `${name}: ${tally.doors} door${tally.doors === 1 ? "" : "s"}, ${tally.calls} calls, ${tally.cases} cases ` +
    `(exception ${exception}, hang ${hang}, crash ${crash}, lost ${lost})`
  );
}

/**
 * Defines one campaign file. For each door, a clean run (made now, at collection, so that its
 * calls can be enumerated), then one test per (call, fault): that fault at that call of the
 * door's invocation, the recovery, and every invariant checked (invariants.ts). A new external
 * call in the engine becomes new cases here without editing the campaign.
 * @param close what the doors need besides the world (a moto_server), stopped with it
 */
export async function defineCampaign(
  file: CampaignFile,
  doors: readonly Door[],
  close?: () => Promise<void>,
): Promise<void> {
  const world = await World.start(LEAK_PATTERN);
  const cleanRuns: Array<{ door: Door; clean: CaseResult }> = [];
  for (const door of doors) {
    cleanRuns.push({
      door,
      clean: await CaseRun.execute(world, door, `${slug(door)}@clean`, undefined, undefined),
    });
  }
  const fileTally = emptyTally();
  const doorTallies = new Map<Door, Tally>();

  afterAll(async () => {
    for (const [door, tally] of doorTallies) console.log(`  ${describeTally(door.name, tally)}`);
    console.log(describeTally(`campaign [${file}]`, fileTally));
    reportTotal(file, fileTally);
    await world.close();
    await close?.();
  });

  describe(`fault campaign: ${file}`, () => {
    for (const { door, clean } of cleanRuns) {
      const doorTally = { ...emptyTally(), doors: 1, calls: clean.sequence.length };
      doorTallies.set(door, doorTally);
      fileTally.doors += 1;
      fileTally.calls += clean.sequence.length;
      const expected = { loginDoor: clean.loginSuccesses > 0, baselineLogins: clean.loginSuccesses };

      describe(door.name, () => {
        it("keeps every invariant in a clean run", ({ expect }) => {
          if (process.env.CAMPAIGN_TRACE === "1") {
            console.log(
              `${door.name}, clean run: ${clean.sequence.map((name, i) => `${i + 1} ${name}`).join(", ")}\n${clean.trace.join("\n")}`,
            );
          }
          expect(clean.violations, `${door.name}, clean run\n${clean.trace.join("\n")}`).toEqual([]);
        });

        clean.sequence.forEach((name, index) => {
          const atCall = index + 1;
          for (const fault of faultsFor(name)) {
            it(`call ${atCall} ${name}: ${fault}`, async ({ expect }) => {
              const plan = { atCall, name, fault };
              const result = await CaseRun.execute(
                world,
                door,
                `${slug(door)}#${atCall}-${fault}`,
                plan,
                expected,
              );
              for (const tally of [doorTally, fileTally]) {
                tally.cases += 1;
                tally.byFault[fault] += 1;
              }
              const what = `${door.name}, call ${atCall} ${name}, ${fault}\n${result.trace.join("\n")}`;
              if (process.env.CAMPAIGN_TRACE === "1") console.log(what);
              expect(result.violations, what).toEqual([]);
            });
          }
        });
      });
    }
  });
}

/**
 * A campaign file whose doors need `tool` and cannot enumerate their calls without it: outside CI
 * (the only place it is called), its block is skipped as tool-gate.ts skips, so the run's loud
 * line counts it, and it adds nothing to the total, which the other files still print.
 */
export function skipCampaign(file: CampaignFile, tool: PythonTool): void {
  describeWithTool(tool, `fault campaign: ${file}`, () => {
    it(`every door, call and fault (needs ${tool})`, () => {
      requirePythonTool(tool);
    });
  });
  reportTotal(file, emptyTally());
}

/** A door's name as it appears in lease owners: `vend-refresh#7-crash/door-2`. */
function slug(door: Door): string {
  return door.name.replace(/[^a-z0-9]+/gi, "-").replace(/-$/, "");
}

/**
 * Each campaign file runs in its own vitest worker; they meet in a directory named after
 * vitest's process. The file that finds all of them reported prints the total, once.
 */
function reportTotal(file: CampaignFile, tally: Tally): void {
  const dir = join(tmpdir(), "exact-broker-campaign", String(process.ppid));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${file}.json`), JSON.stringify(tally));
  const reported = readdirSync(dir).filter((name) => name.endsWith(".json"));
  if (!CAMPAIGN_FILES.every((name) => reported.includes(`${name}.json`))) return;
  let marker: number;
  try {
    marker = openSync(join(dir, "total.printed"), "wx");
  } catch {
    return;
  }
  closeSync(marker);
  const total = emptyTally();
  for (const name of CAMPAIGN_FILES) {
    const one = JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8")) as Tally;
    total.doors += one.doors;
    total.calls += one.calls;
    total.cases += one.cases;
    for (const fault of Object.values(Fault)) total.byFault[fault] += one.byFault[fault];
  }
  console.log(describeTally("campaign total", total));
  rmSync(dir, { recursive: true, force: true });
}
