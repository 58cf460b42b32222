import { expect } from "vitest";
import type { Broker, BrokerOverrides } from "../../../lib/broker.js";
import type { ChainRecord } from "../../../lib/chain/chain-record.js";
import type { VendOptions } from "../../../lib/chain/vend-door.js";
import { BrokerError } from "../../../lib/errors.js";
import type { BrokerEvent } from "../../../lib/events/broker-events.js";
import { MemoryPublisher } from "../../../lib/events/event-publishers.js";
import type { DemoConnection } from "../../../lib/local/local-stack.js";
import type { ScriptSpec } from "../../../lib/sim/server.js";
import type { ChainStats } from "../../../lib/sim/stats.js";
import type { Fixture } from "../../support/fixture.js";

/**
 * Shared steps of the bad-days tests: every answer Exact was seen to give on a bad day, scripted
 * at the simulator (lib/sim/README.md "Scripted answers") and sent to the real broker.
 */

/** A broker per call (a new container: empty token cache) on the fixture's clock, its events kept. */
export interface Harness {
  readonly events: MemoryPublisher;
  /** Connection IDs whose heal a door asked for (heals run explicitly in these tests). */
  readonly healsAsked: string[];
  broker(overrides?: BrokerOverrides): Broker;
}

export function harness(fx: Fixture): Harness {
  const events = new MemoryPublisher();
  const healsAsked: string[] = [];
  return {
    events,
    healsAsked,
    broker: (overrides = {}) =>
      fx.broker({
        events,
        healTrigger: { trigger: (id: string) => void healsAsked.push(id), handedOff: async () => undefined },
        vendOptions: { waitMs: 1_000 },
        ...overrides,
      }),
  };
}

/** Event types and reasons, in order. */
export function eventsOf(events: MemoryPublisher, type?: string): [string, string, string][] {
  return events.events
    .filter((event: BrokerEvent) => type === undefined || event.type === type)
    .map((event) => [event.type, event.detail.connectionId, event.detail.reason]);
}

/** What a vend answered: the generation served, or the error's name, retryability and wait. */
export async function vendOutcome(
  broker: Broker,
  connectionId: string,
  minValiditySeconds: number,
  options: VendOptions = {},
): Promise<
  | { readonly served: number; readonly expiresAtMs: number }
  | { readonly error: string; readonly retryable: boolean; readonly retryAfterSeconds?: number }
> {
  try {
    const answer = await broker.vend.vend(connectionId, minValiditySeconds, options);
    return { served: answer.generation, expiresAtMs: Date.parse(answer.expiresAt) };
  } catch (error) {
    if (!(error instanceof BrokerError)) throw error;
    return {
      error: error.name,
      retryable: error.retryable,
      ...(error.retryAfterSeconds !== undefined ? { retryAfterSeconds: error.retryAfterSeconds } : {}),
    };
  }
}

export async function recordOf(fx: Fixture, connectionId: string): Promise<ChainRecord> {
  const record = await fx.stack.store().get(connectionId);
  if (!record) throw new Error(`connection ${connectionId} is gone`);
  return record;
}

export function chainStatsOf(fx: Fixture, conn: DemoConnection): ChainStats {
  const stats = fx.stack.sim.stats().chains[`${conn.clientId}/${conn.username}`];
  if (!stats) throw new Error(`the simulator has no chain for ${conn.connectionId}`);
  return stats;
}

/** The broker holds Exact's live chain: the refresh token it stores is the one Exact would accept now. */
export async function expectLiveChain(fx: Fixture, conn: DemoConnection = fx.conn): Promise<void> {
  const record = await recordOf(fx, conn.connectionId);
  expect(record.refreshHash).toBe(chainStatsOf(fx, conn).liveRefreshHash);
}

/** Moves the shared clock to the moment Exact accepts the chain's next refresh (its window). */
export async function advanceToWindow(fx: Fixture, connectionId = fx.conn.connectionId): Promise<void> {
  const record = await recordOf(fx, connectionId);
  const waitMs = (record.windowOpensAtMs ?? 0) - fx.clock.now();
  if (waitMs > 0) fx.clock.advance(waitMs / 1000);
}

/** Adds another connection (another Exact user) of the fixture's app and seeds it on the fixture's clock. */
export async function addSibling(fx: Fixture, connectionId: string): Promise<DemoConnection> {
  const conn = await fx.stack.addConnection(connectionId, { clientId: fx.conn.clientId });
  await seed(fx, conn);
  return conn;
}

export async function seed(fx: Fixture, conn: DemoConnection, broker: Broker = fx.broker()): Promise<void> {
  const code = fx.stack.sim.authorize({
    clientId: conn.clientId,
    username: conn.username,
    redirectUri: conn.redirectUri,
  });
  await broker.onboarding.seed(conn.connectionId, code);
}

/** A script for the fixture's app at the token endpoint. */
export function tokenScript(fx: Fixture, spec: Omit<ScriptSpec, "endpoint" | "clientId">): string {
  return fx.stack.sim.addScript({ endpoint: "token", clientId: fx.conn.clientId, ...spec });
}

/** Token-endpoint answers of one chain, by the simulator's outcome, zeros left out. */
export function tokenAnswers(fx: Fixture, conn: DemoConnection = fx.conn): Record<string, number> {
  return Object.fromEntries(
    Object.entries(chainStatsOf(fx, conn).tokenRequests).filter(([, count]) => count > 0),
  );
}

export function successfulLogins(fx: Fixture, conn: DemoConnection = fx.conn): number {
  return fx.stack.sim.stats().logins[conn.username]?.success ?? 0;
}

/** Exact errors the chain counted in the last hour (its own budget: 8). */
export function countedErrors(record: ChainRecord): number {
  return record.tokenErrors?.errorAtMs.length ?? 0;
}

/**
 * The fixture's clock is Date.now() plus an offset: real time passes during a call, so a wait
 * measured from before the call may exceed the broker's by this much (a loaded machine included).
 */
export const REAL_TIME_SLACK_MS = 1_000;

/** Exact's nightly maintenance page, as reported: a bare 400 with an HTML body. */
export const MAINTENANCE_HTML =
  "<!DOCTYPE html><html><head><title>Exact Online - Maintenance</title></head><body><h1>Exact Online is temporarily unavailable</h1><p>We are performing scheduled maintenance.</p></body></html>";
export const MAINTENANCE_TEXT = "Service temporarily unavailable due to maintenance. Please try again later.";

/** The API gateway's fault body that came with a 500 after a slow call Exact had processed. */
export const GATEWAY_FAULT = {
  fault: {
    faultstring: "Execution of ExtractVariables failed with error: Invalid JSON payload",
    detail: { errorcode: "steps.extractvariables.ExecutionFailed" },
  },
};
