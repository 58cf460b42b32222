import { describe, expect, it } from "vitest";
import { type ChainRecord, LeasePurpose } from "../../lib/chain/chain-record.js";
import { LeaseWaitSchedule, TYPICAL_TOKEN_CALL_MS } from "../../lib/chain/lease-wait.js";

const T0 = 1_767_600_000_000;

function held(purpose: LeasePurpose, generation = 3): ChainRecord {
  return {
    connectionId: "acme",
    generation,
    inflight: { owner: "other", generation, purpose, startedAtMs: T0 },
  } as unknown as ChainRecord;
}

const advanced = (generation: number, arrivedAtMs: number): ChainRecord =>
  ({ connectionId: "acme", generation, accessIssuedAtMs: arrivedAtMs }) as unknown as ChainRecord;

/** random() always 0.5: jitter factor 1, and half of the near-poll spread. */
const middle = () => 0.5;

describe("LeaseWaitSchedule: how long a vend waits for another holder", () => {
  it("sleeps until a refresh's token call should have landed, then reads every ~50 ms", () => {
    const waiter = new LeaseWaitSchedule(middle).waiter();

    expect(waiter.pauseMs(held(LeasePurpose.Refresh), T0 + 10)).toBe(TYPICAL_TOKEN_CALL_MS - 10 + 25);
    expect(waiter.pauseMs(held(LeasePurpose.Refresh), T0 + TYPICAL_TOKEN_CALL_MS + 25)).toBe(50);
    expect(waiter.pauseMs(held(LeasePurpose.Probe), T0 + TYPICAL_TOKEN_CALL_MS + 250)).toBe(50);
  });

  it("backs off from 100 ms once the call is late, and from 25 ms for any other holder", () => {
    const late = new LeaseWaitSchedule(middle).waiter();
    const pauses = [0, 1, 2, 3].map(() =>
      late.pauseMs(held(LeasePurpose.Refresh), T0 + TYPICAL_TOKEN_CALL_MS + 1_500),
    );
    expect(pauses).toEqual([100, 200, 400, 400]);

    const login = new LeaseWaitSchedule(middle).waiter();
    expect([0, 1, 2].map(() => login.pauseMs(held(LeasePurpose.Heal), T0 + 10))).toEqual([25, 50, 100]);
  });

  it("learns how long this container's waits take from the generations that landed", () => {
    const schedule = new LeaseWaitSchedule(middle);
    const waiter = schedule.waiter();
    waiter.pauseMs(held(LeasePurpose.Refresh, 3), T0 + 10);

    waiter.observe(held(LeasePurpose.Refresh, 3));
    expect(schedule.expectedCallMs).toBe(TYPICAL_TOKEN_CALL_MS);
    waiter.observe(advanced(4, T0 + 1_400));

    expect(schedule.expectedCallMs).toBe(
      Math.round(TYPICAL_TOKEN_CALL_MS + 0.3 * (1_400 - TYPICAL_TOKEN_CALL_MS)),
    );
    // The next vend's wait starts from what was learned.
    expect(schedule.waiter().pauseMs(held(LeasePurpose.Refresh, 4), T0)).toBe(schedule.expectedCallMs + 25);
  });

  it("does not learn a stalled call as a usual one", () => {
    const schedule = new LeaseWaitSchedule(middle);
    const waiter = schedule.waiter();
    waiter.pauseMs(held(LeasePurpose.Refresh, 3), T0 + 10);

    waiter.observe(advanced(4, T0 + 60_000));

    expect(schedule.expectedCallMs).toBe(
      Math.round(TYPICAL_TOKEN_CALL_MS + 0.3 * (5_000 - TYPICAL_TOKEN_CALL_MS)),
    );
  });
});
