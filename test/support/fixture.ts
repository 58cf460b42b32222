import type { Broker, BrokerOverrides } from "../../lib/broker.js";
import type { ChainRecord } from "../../lib/chain/chain-record.js";
import type { ChainStore } from "../../lib/chain/chain-store.js";
import { ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import {
  type DemoConnection,
  type LocalStack,
  type LocalStackOptions,
  startLocalStack,
} from "../../lib/local/local-stack.js";
import type { ChainStats } from "../../lib/sim/stats.js";

/**
 * A clock shared by the broker and the simulator. `sleep` advances it instead of waiting, so a
 * test can walk through a token's whole life in milliseconds.
 */
export class TestClock {
  offsetMs = 0;
  /**
   * @param realShortSleeps sleeps under a second pass in real time (time still flows), longer
   *   ones jump. For tests where several callers poll while a login runs: jumping on every
   *   poll would carry the clock past a TOTP step between a code's making and its check.
   */
  constructor(private readonly realShortSleeps = false) {}
  readonly now = (): number => Date.now() + this.offsetMs;
  readonly sleep = async (ms: number): Promise<void> => {
    if (this.realShortSleeps && ms < 1_000) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
      return;
    }
    this.offsetMs += Math.max(0, ms);
    await new Promise((resolve) => setImmediate(resolve));
  };
  advance(seconds: number): void {
    this.offsetMs += seconds * 1000;
  }
}

export interface Fixture {
  readonly stack: LocalStack;
  readonly clock: TestClock;
  readonly conn: DemoConnection;
  /** A broker on the shared clock; each call is a new "container" (empty token cache). */
  broker(overrides?: BrokerOverrides): Broker;
  record(): Promise<ChainRecord>;
  /** The store on the fixture's clock (leases are judged on it). */
  store(): ChainStore;
  chainStats(): ChainStats;
  /**
   * Another system's consent for the fixture's user (its own code exchange): Exact starts a new
   * chain and ends the one the broker holds, whose next refresh meets "Old refresh token used".
   * @returns the new chain's refresh token (the other system's; the broker never saw it)
   */
  chainStartedElsewhere(): Promise<string>;
  close(): Promise<void>;
}

let counter = 0;

/** dynalite + simulator + one seeded connection, on a fake clock unless `realClock`. */
export async function startFixture(
  options: LocalStackOptions & {
    readonly realClock?: boolean;
    readonly realShortSleeps?: boolean;
    readonly seed?: boolean;
    readonly mode?: "code" | "implicit";
    /** The connection's pinned division, as `connection add --division` sets it. */
    readonly division?: number;
  } = {},
): Promise<Fixture> {
  const clock = new TestClock(options.realShortSleeps);
  const fake = !options.realClock;
  const stack = await startLocalStack({
    // DynamoDB's Date headers on the same clock, or the broker would measure the fake clock's lead as skew.
    ...(fake ? { dynamoNow: clock.now } : {}),
    ...options,
    sim: { ...(fake ? { now: clock.now } : {}), ...options.sim },
  });
  counter += 1;
  const broker = (overrides: BrokerOverrides = {}): Broker =>
    stack.broker({ ...(fake ? { now: clock.now, sleep: clock.sleep } : {}), ...overrides });
  const conn = await stack.addConnection(`conn-${counter}`, {
    mode: options.mode ?? "code",
    ...(options.division !== undefined ? { division: options.division } : {}),
  });
  if ((options.seed ?? true) && options.mode !== "implicit") {
    const code = stack.sim.authorize({
      clientId: conn.clientId,
      username: conn.username,
      redirectUri: conn.redirectUri,
    });
    await broker().onboarding.seed(conn.connectionId, code);
  }
  return {
    stack,
    clock,
    conn,
    broker,
    store: () => stack.store(fake ? clock.now : undefined),
    async record() {
      const record = await stack.store().get(conn.connectionId);
      if (!record) throw new Error(`connection ${conn.connectionId} is gone`);
      return record;
    },
    chainStats() {
      const stats = stack.sim.stats().chains[`${conn.clientId}/${conn.username}`];
      if (!stats) throw new Error("the simulator has no chain for the fixture's connection");
      return stats;
    },
    async chainStartedElsewhere() {
      const clientSecret = await broker().deps.secrets.clientSecret(conn.secretId);
      const { clientId, username, redirectUri } = conn;
      const code = stack.sim.authorize({ clientId, username, redirectUri });
      const started = await new ExactOAuthClient({ now: clock.now }).exchangeCode(
        stack.sim.url,
        { clientId, clientSecret },
        code,
        redirectUri,
        5_000,
      );
      if (started.kind !== "tokens") throw new Error(`the other system's consent got ${started.kind}`);
      return started.rotated.refreshToken;
    },
    close: () => stack.close(),
  };
}
