import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { TOKEN_CALLS_PER_DAY, utcDay } from "../../lib/chain/token-call-cap.js";
import type { CaseRun, Door } from "./case-run.js";
import { brokenChain, expectStatus, heal, seed, toWindow, vend } from "./scenarios.js";

/**
 * Doors of a user's (or a chain's) bad days at Exact (issue 9): a block seen at the token
 * endpoint and the login re-check of a BLOCKED connection whose chain Exact ended; heals whose
 * division check runs (the user's CurrentDivision moved; the user lost the pinned division);
 * the operator's `connection set-division`; the daily token-call cap (the call that reaches
 * TokenCallsHigh's 180, and a chain at the cap); and the escalation of odd 4xx answers to SUSPECT.
 * Exact's answers are the simulator's scripts and settings, as test/chain/bad-days/ makes them.
 */

/** The simulator's default `CurrentDivision` (lib/sim/state.ts): what a user shows at its first consent. */
const FIRST_DIVISION = 123456;
const OTHER_DIVISION = 777777;
const DAY_MS = 86_400_000;

function tokenScript(
  run: CaseRun,
  spec: { status: number; headers?: Record<string, string>; json: unknown },
) {
  run.world.sim.addScript({ endpoint: "token", clientId: run.connection.clientId, ...spec });
}

/** Exact refuses the user: 403 with a `Reason` (here BlockedUser), as reported on any endpoint. */
const BLOCKED_USER = {
  status: 403,
  headers: { Reason: "BlockedUser" },
  json: { error: "access_denied", error_description: "Forbidden" },
};
const ME_BLOCKED_USER = {
  status: 403,
  headers: { Reason: "BlockedUser" },
  json: { error: { code: "", message: { lang: "", value: "Forbidden" } } },
};
/** An OAuth error Exact's documentation does not list (one-chain-odd-4xx.test.ts). */
const ODD_400 = {
  status: 400,
  json: { error: "unsupported_request", error_description: "The request could not be handled." },
};

/**
 * U1. A vend in the window whose refresh Exact answers 403 `Reason: BlockedUser`: BLOCKED
 * (blocked_user), one UserBlocked event, no heal; the re-check 30 minutes on (the scheduled
 * refresh: the chain refreshed, then /current/Me) finds the user accepted again.
 */
export const vendSeesBlock: Door = {
  name: "vend (token endpoint: 403 BlockedUser)",
  mode: "code",
  async setup(run) {
    await seed(run);
    await toWindow(run);
    tokenScript(run, BLOCKED_USER);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/**
 * U2. The login re-check of a BLOCKED connection without a chain: its user blocked at the seed's
 * identity check, then the re-check's refresh found the chain ended ("Old refresh token used");
 * six hours on, fallback-login (as the refresher triggers it) logs in, and /current/Me accepts
 * the user now.
 */
export const healChainlessBlocked: Door = {
  name: "heal (BLOCKED without a chain: the login re-check)",
  mode: "code",
  async setup(run) {
    run.world.sim.addScript({ endpoint: "me", clientId: run.connection.clientId, ...ME_BLOCKED_USER });
    await run.invoke("setup", (invocation) => run.seed(invocation));
    await expectStatus(run, ChainStatus.Blocked);
    tokenScript(run, {
      status: 401,
      json: { error: "unauthorized_client", error_description: "Old refresh token used." },
    });
    run.world.clock.advanceTo((await run.item()).dueAtMs ?? run.world.clock.now());
    await run.invoke("setup", (invocation) => invocation.broker.refresh.run());
    const item = await run.item();
    if (item.status !== ChainStatus.Blocked || item.refreshCt !== undefined) {
      throw new Error(
        `${run.door.name} setup: the connection is ${item.status}, not BLOCKED without a chain`,
      );
    }
    run.world.clock.advanceTo(item.dueAtMs ?? run.world.clock.now());
  },
  act: (run, invocation) => invocation.broker.heal.heal(run.connection.connectionId),
  compete: heal,
};

/**
 * U3. A heal after the user's CurrentDivision moved (another company opened in the browser): Me
 * shows another division, so the pinned one is checked (`system/Divisions`), reached, and kept.
 */
export const healChecksDivision: Door = {
  name: "heal (division moved: the pinned one checked)",
  mode: "code",
  async setup(run) {
    await brokenChain(run);
    run.world.sim.setUserDivisions(run.connection.username, {
      divisions: [FIRST_DIVISION, OTHER_DIVISION],
      division: OTHER_DIVISION,
    });
  },
  act: (run, invocation) => invocation.broker.heal.heal(run.connection.connectionId),
  compete: heal,
};

/**
 * U4. A heal whose user can no longer open the pinned division: REAUTH_REQUIRED
 * (division_unreachable) with its event, the new chain kept. The operator gives the user the
 * division back in Exact and heals (`exact-broker heal --id`).
 */
export const healDivisionUnreachable: Door = {
  name: "heal (pinned division unreachable)",
  mode: "code",
  async setup(run) {
    await brokenChain(run);
    run.world.sim.setUserDivisions(run.connection.username, { divisions: [OTHER_DIVISION] });
  },
  act: (run, invocation) => invocation.broker.heal.heal(run.connection.connectionId),
  compete: heal,
  async operatorStep(run, connection, item) {
    if (item.status !== ChainStatus.ReauthRequired) return false;
    run.world.sim.setUserDivisions(connection.username, { divisions: [FIRST_DIVISION, OTHER_DIVISION] });
    run.world.clock.alignToTotpStep();
    await run.invoke("recovery", (invocation) =>
      invocation.broker.heal.heal(connection.connectionId, { operator: true }),
    );
    return true;
  },
};

/** The operator's `connection set-division --division OTHER`, recorded as the operator's pin. */
function setDivision(run: CaseRun) {
  return run.invoke("competitor", (invocation) => pinOther(run, invocation));
}

function pinOther(run: CaseRun, invocation: Parameters<Door["act"]>[1]) {
  run.log.operatorPinned(run.connection.connectionId, OTHER_DIVISION);
  return invocation.broker.division.set(run.connection.connectionId, OTHER_DIVISION);
}

/**
 * U5. `connection set-division`: the operator pins another division the chain's user can open.
 * Exact is asked first (`system/Divisions` with the stored token), then the pin is written
 * without a lease. A hang lets the operator's second try in.
 */
export const setDivisionDoor: Door = {
  name: "connection set-division",
  mode: "code",
  async setup(run) {
    await seed(run);
    run.world.sim.setUserDivisions(run.connection.username, { divisions: [FIRST_DIVISION, OTHER_DIVISION] });
  },
  act: pinOther,
  compete: setDivision,
};

/** U6. The same when the stored access token has expired: a vend's refresh first, then the check and the pin. */
export const setDivisionRefreshesFirst: Door = {
  name: "connection set-division (token expired: refreshed first)",
  mode: "code",
  async setup(run) {
    await setDivisionDoor.setup(run);
    const item = await run.item();
    run.world.clock.advanceTo(Math.max(item.accessExpiresAtMs ?? 0, item.windowOpensAtMs ?? 0) + 1_000);
  },
  act: pinOther,
  compete: setDivision,
};

/**
 * The chain has made `count` token calls today (written as the broker counts them), and Exact's
 * cap (the simulator's `dailyTokenCap` variant) is set where the broker's 200 falls: the
 * simulator counted the seed's code exchange only, so whatever the broker sends past its 200
 * Exact refuses, and the checker sees it (nothing past the daily cap).
 */
async function callsToday(run: CaseRun, count: number): Promise<void> {
  await seed(run);
  await toWindow(run);
  const nowMs = run.world.clock.now();
  await run.world.dynamo.send(
    new UpdateItemCommand({
      TableName: run.world.tableName,
      Key: marshall({ pk: connectionKey(run.connection.connectionId) }),
      UpdateExpression: "SET tokenCalls = :calls",
      ExpressionAttributeValues: marshall({ ":calls": { day: utcDay(nowMs), count } }),
    }),
  );
  run.forgetItem();
  const simulatorCounted = 1;
  run.world.sim.setVariants({
    dailyTokenCap: true,
    dailyTokenCapPerDay: TOKEN_CALLS_PER_DAY - count + simulatorCounted,
  });
}

/**
 * A chain left unsettled at the cap waits for UTC midnight, when both counts start over (Exact's
 * then at its own 200 again): the next day's vend or probe goes through.
 */
async function waitForMidnight(run: CaseRun): Promise<boolean> {
  const item = await run.item();
  const nowMs = run.world.clock.now();
  if ((item.tokenCalls?.day ?? -1) !== utcDay(nowMs) || (item.tokenCalls?.count ?? 0) < TOKEN_CALLS_PER_DAY) {
    return false;
  }
  run.world.clock.advanceTo((utcDay(nowMs) + 1) * DAY_MS + 1_000);
  run.world.sim.setVariants({ dailyTokenCapPerDay: TOKEN_CALLS_PER_DAY });
  return false;
}

/** U7. A vend whose refresh is the chain's 180th token call today: the refresh, then TokenCallsHigh. */
export const vendReachesWarning: Door = {
  name: "vend (daily cap: the 180th call warns)",
  mode: "code",
  setup: (run) => callsToday(run, 179),
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
  operatorStep: waitForMidnight,
};

/** U8. A vend of a chain that made its 200 token calls today: Throttled until UTC midnight, nothing sent. */
export const vendAtDailyCap: Door = {
  name: "vend (daily cap reached: held)",
  mode: "code",
  setup: (run) => callsToday(run, TOKEN_CALLS_PER_DAY),
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
  operatorStep: waitForMidnight,
};

/** Exact answers the chain's next refresh with an odd 400, then its own backoff passes. */
async function oddAnswer(run: CaseRun): Promise<void> {
  tokenScript(run, ODD_400);
  await run.invoke("setup", (invocation) => run.vend(invocation, 30));
  run.world.clock.advanceTo(((await run.item()).backoffUntilMs ?? 0) + 1);
}

/**
 * Two chains of one app in their windows; the door's chain got two odd 400s in a row while the
 * peer refreshed fine in between (so they are not maintenance: test/chain/bad-days/one-chain-odd-4xx.test.ts).
 */
async function twoOddAnswers(run: CaseRun): Promise<void> {
  await seed(run);
  const peer = await run.addPeer();
  await seed(run, peer);
  await toWindow(run);
  await toWindow(run, peer);
  await oddAnswer(run);
  await run.invoke("setup", (invocation) => run.vend(invocation, 30, peer));
  await oddAnswer(run);
  const item = await run.item();
  if (item.oddAnswers?.count !== 2)
    throw new Error(`${run.door.name} setup: ${item.oddAnswers?.count} odd answers`);
}

/** U9. The third odd 400 in a row: the chain is SUSPECT (one probe next, which finds it alive). */
export const vendOddEscalates: Door = {
  name: "vend (odd 4xx: the third makes it SUSPECT)",
  mode: "code",
  async setup(run) {
    await twoOddAnswers(run);
    tokenScript(run, ODD_400);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};

/** U10. The SUSPECT chain's probe gets the same odd answer: BROKEN (invalid_chain), a heal logs in. */
export const vendOddProbe: Door = {
  name: "vend (odd 4xx: SUSPECT's probe gets it again)",
  mode: "code",
  async setup(run) {
    await twoOddAnswers(run);
    await oddAnswer(run);
    await expectStatus(run, ChainStatus.Suspect);
    tokenScript(run, ODD_400);
  },
  act: (run, invocation) => run.vend(invocation, 30),
  compete: vend,
};
