import { InProcessHealTrigger } from "../lib/chain/heal-trigger.js";
import { BrokerError } from "../lib/errors.js";
import { startLocalStack } from "../lib/local/local-stack.js";
import { createLogger } from "../lib/log/logger.js";

export interface MeOutageResult {
  readonly outageMinutes: number;
  /** Successful logins at Exact while /current/Me was down. */
  readonly logins: number;
  /** Chains Exact started for the pair during the outage (each login's code exchange starts one). */
  readonly chainsStarted: number;
  /** /current/Me calls the broker made during the outage (each one an identity check). */
  readonly identityChecks: number;
  /** Minutes of the outage in which the item held Exact's live chain (stored, never lost). */
  readonly minutesLiveChainStored: number;
  readonly statusDuringOutage: string;
  /** Seconds from /current/Me's return until a vend was served again. */
  readonly servedAfterSeconds: number;
  readonly loginsAfter: number;
}

/** A clock that only moves when told: the outage lasts an hour of simulated time, seconds of real time. */
function fakeClock() {
  let offsetMs = 0;
  const now = () => Date.now() + offsetMs;
  return {
    now,
    sleep: async (ms: number) => {
      offsetMs += Math.max(0, ms);
      await new Promise((resolve) => setImmediate(resolve));
    },
    advance: (ms: number) => {
      offsetMs += ms;
    },
  };
}

/**
 * A chain breaks (rotate-then-drop, found by the probe), and Exact's /current/Me answers 503 for
 * `outageMinutes`. The scheduled refresh runs every minute and triggers heals as fallback-login
 * would; a consumer vends every minute. Counts the logins and chain starts the outage costs: the
 * heal's login persists its new chain before the identity check, so a failing check never means
 * another login (before, each trigger logged in again: about 28 logins an hour, the issue says).
 */
export async function raceMeOutage(outageMinutes = 60): Promise<MeOutageResult> {
  const clock = fakeClock();
  const log = createLogger({ serviceName: "bench", level: "ERROR" });
  const stack = await startLocalStack({ sim: { now: clock.now }, dynamoNow: clock.now, log });
  try {
    const conn = await stack.addConnection("me-outage");
    const key = `${conn.clientId}/${conn.username}`;
    const broker = () => {
      const trigger = new InProcessHealTrigger(() => built.heal, log);
      const built = stack.broker({ now: clock.now, sleep: clock.sleep, healTrigger: trigger, log });
      return { built, trigger };
    };
    const code = stack.sim.authorize({
      clientId: conn.clientId,
      username: conn.username,
      redirectUri: conn.redirectUri,
    });
    await broker().built.onboarding.seed(conn.connectionId, code);
    stack.sim.addFault({ kind: "rotate_then_drop", endpoint: "token", count: 1 });
    clock.advance(572_000);
    await broker()
      .built.vend.vend(conn.connectionId, 30)
      .catch(() => undefined);
    clock.advance(3_000);

    stack.sim.addFault({ kind: "status", status: 503, endpoint: "me", probability: 1 });
    const before = stack.sim.stats();
    let minutesLiveChainStored = 0;
    let status = "";
    for (let minute = 0; minute < outageMinutes; minute += 1) {
      process.stderr.write(`\r   /current/Me down: minute ${minute + 1} of ${outageMinutes} `);
      const { built, trigger } = broker();
      await built.refresh.run().catch(() => undefined);
      await trigger.settled();
      await built.vend.vend(conn.connectionId, 30).catch((error: unknown) => {
        if (!(error instanceof BrokerError)) throw error;
      });
      await trigger.settled();
      const record = await stack.store(clock.now).get(conn.connectionId);
      status = record?.status ?? "gone";
      if (record?.refreshHash === stack.sim.stats().chains[key]?.liveRefreshHash) minutesLiveChainStored += 1;
      clock.advance(60_000);
    }
    process.stderr.write("\n");
    const during = stack.sim.stats();
    stack.sim.clearFaults();
    const backAtMs = clock.now();
    let servedAtMs: number | undefined;
    for (let attempt = 0; attempt < 10 && servedAtMs === undefined; attempt += 1) {
      const { built, trigger } = broker();
      await built.refresh.run().catch(() => undefined);
      await trigger.settled();
      try {
        await built.vend.vend(conn.connectionId, 30);
        servedAtMs = clock.now();
      } catch {
        clock.advance(10_000);
      }
    }
    const after = stack.sim.stats();
    const logins = (s: typeof before) => s.logins[conn.username]?.success ?? 0;
    const meCalls = (s: typeof before) =>
      Object.values(s.chains[key]?.meRequests ?? {}).reduce((a, b) => a + b, 0);
    return {
      outageMinutes,
      logins: logins(during) - logins(before),
      chainsStarted: (during.chains[key]?.chainsStarted ?? 0) - (before.chains[key]?.chainsStarted ?? 0),
      identityChecks: meCalls(during) - meCalls(before),
      minutesLiveChainStored,
      statusDuringOutage: status,
      servedAfterSeconds: servedAtMs === undefined ? Number.NaN : Math.round((servedAtMs - backAtMs) / 1000),
      loginsAfter: logins(after) - logins(during),
    };
  } finally {
    await stack.close();
  }
}
