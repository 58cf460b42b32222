import { describe, expect, it } from "vitest";
import {
  type OutageKind,
  type OutageResult,
  runOutage,
  TARGET_ERRORS_PER_HOUR,
  targetDelaySeconds,
} from "../../bench/outage-pacing.js";
import { probeIntervalMs } from "../../lib/chain/app-states.js";
import { ChainStatus } from "../../lib/chain/chain-record.js";

/**
 * Outage pacing (issue 9): "During an outage, errors are spent where they teach the most. One
 * chain per (app, base URL) probes for all of them, rotating which chain pays; the others wait
 * for its answer." Hot chains of one app (consumers vend every 30 s, the scheduled refresh runs
 * every minute) meet an outage of Exact's token endpoint: a simulator script answers every token
 * request of the app with a bare 400 and an HTML body (not processed), or with a 503, for the
 * outage's length, then is removed. The scenario runs on a discrete-event clock through dynalite
 * and the simulator (bench/outage-pacing.ts, which the bench's table runs too).
 *
 * A chain's delay is its first new token's arrival after Exact is back, counted from the return
 * (or from when the chain's refresh window opened, if later: it needed no token before). Token
 * errors are every token call that got no tokens (503s included), from the broker's own record
 * of its calls; the simulator's per-pair counts must agree with it.
 */

/** What every run must show whatever its timing: nothing lost, nothing broken, sim and broker agree. */
function expectNothingLost(r: OutageResult): void {
  expect(r.crashes).toEqual([]);
  expect(r.heals).toEqual([]);
  expect(r.events).toEqual([]);
  for (const chain of r.chains) {
    expect(chain.statusAtEnd, chain.connectionId).toBe(ChainStatus.Active);
    expect(chain.holdsLiveChain, chain.connectionId).toBe(true);
    // Every refresh grant the broker sent is one the simulator counted for the pair, and the reverse.
    const { issued: _issued, code_exchanged: _codeExchanged, ...answered } = chain.simTokenRequests;
    const simRefreshes = Object.values(answered).reduce((a, b) => a + b, 0);
    expect(simRefreshes, chain.connectionId).toBe(chain.calls);
  }
}

/** Seconds from Exact's return (or the chain's window) to each chain's first new token; -1: none. */
function delaysSeconds(r: OutageResult): Record<string, number> {
  return Object.fromEntries(
    r.chains.map((c) => [c.connectionId, c.delayMs === undefined ? -1 : Math.round(c.delayMs / 1000)]),
  );
}

/** The target; soft, so that a run that misses it still shows how its calls were paced. */
function expectServedWithin(r: OutageResult, seconds: number): void {
  const delays = delaysSeconds(r);
  const late = Object.entries(delays).filter(([, s]) => s < 0 || s > seconds);
  const ranMin = Math.round((r.endMs - r.backAtMs) / 60_000);
  const answers = r.chains.map(
    (c) =>
      `${c.connectionId}: scripted ${c.simTokenRequests.scripted}, error_limited ${c.simTokenRequests.error_limited}`,
  );
  expect
    .soft(
      late,
      `delays (s) after Exact was back (-1: none in the ${ranMin} min the run went on): ${JSON.stringify(delays)}; the simulator answered ${answers.join("; ")}`,
    )
    .toEqual([]);
}

/** The app's token calls from Exact going down to the first token after it came back. */
function outageCalls(r: OutageResult) {
  const firstBack = r.calls.find((c) => c.atMs >= r.backAtMs && c.outcome === "tokens");
  return r.calls.filter(
    (c) => c.atMs >= r.outageStartMs && (firstBack === undefined || c.atMs <= firstBack.atMs),
  );
}

/**
 * One call per probe interval across the app: each call of the outage comes at least the probe
 * interval (by the outage's age, app-states.ts probeIntervalMs), or the answer's Retry-After if
 * longer, after the one before, and not much later (a consumer's next vend after the probe falls
 * due: 30 s, plus the 5 s spread).
 */
function expectPaced(r: OutageResult): void {
  const sinceMs = r.outageSinceMs ?? r.outageStartMs;
  const calls = outageCalls(r);
  const gaps = calls.slice(1).map((call, i) => {
    const before = calls[i] ?? call;
    const waitMs = Math.max(probeIntervalMs(before.atMs - sinceMs), (before.retryAfterSeconds ?? 0) * 1000);
    return { atS: Math.round((call.atMs - sinceMs) / 1000), gapS: (call.atMs - before.atMs) / 1000, waitMs };
  });
  const early = gaps.filter((g) => g.gapS * 1000 < g.waitMs);
  const late = gaps.filter((g) => g.gapS * 1000 > g.waitMs + 35_000);
  expect.soft(early, "calls sooner than the probe's wait after the one before").toEqual([]);
  expect.soft(late, "calls much later than the probe's wait after the one before").toEqual([]);
}

describe("outage pacing: 10 hot chains of one app", () => {
  // 502: a gateway's Bad Gateway, nothing processed; each chain that gets one is SUSPECT, its
  // probes paced as the app's (a 5xx answer to a probe is one more unknown outcome, not BROKEN).
  it.each<OutageKind>(["bare 400", "bare 400, counted", "503", "502"])(
    "after 20 min of %s: every chain has a new token within 2 min of Exact being back; no chain spends more than 8 token errors in any hour; one call per probe interval, rotating",
    async (kind) => {
      const r = await runOutage({ kind, outageMinutes: 20, chains: 10, afterMaxMinutes: 5 });

      expectNothingLost(r);
      expectServedWithin(r, targetDelaySeconds(20, 10));
      // Every chain needed a token during the outage: its window had opened before Exact was back.
      for (const chain of r.chains) expect(chain.windowAtMs, chain.connectionId).toBeLessThan(r.backAtMs);
      // Token errors per chain in any rolling hour: every answer but tokens (503s too), the 4xx among
      // them, the chain's own budget, and the simulator's count (the outage fits in an hour, so a
      // pair's scripted answers are its errors in that hour). Exact's error limit was never hit.
      for (const chain of r.chains) {
        const id = chain.connectionId;
        expect(chain.failedCallsMaxPerHour, id).toBeLessThanOrEqual(TARGET_ERRORS_PER_HOUR);
        expect(chain.answered4xxMaxPerHour, id).toBeLessThanOrEqual(TARGET_ERRORS_PER_HOUR);
        expect(chain.brokerTokenErrors, id).toBeLessThanOrEqual(TARGET_ERRORS_PER_HOUR);
        expect(chain.simTokenRequests.scripted, id).toBeLessThanOrEqual(TARGET_ERRORS_PER_HOUR);
        expect(chain.simTokenRequests.error_limited, id).toBe(0);
      }
      expectPaced(r);
      // Who pays rotates: the outage's calls are spread over the chains, not one chain's.
      const paid = new Map<string, number>();
      for (const call of outageCalls(r)) paid.set(call.connectionId, (paid.get(call.connectionId) ?? 0) + 1);
      expect(paid.size, JSON.stringify(Object.fromEntries(paid))).toBeGreaterThanOrEqual(5);
      // And the whole app spends about one call a minute, whatever its number of chains.
      expect(r.callsDuringOutage).toBeLessThanOrEqual(6 + 14 + 1 + 1);
    },
    90_000,
  );
});

/** When Exact's error limit lets the chain's user in again (epoch ms): the end of its last 429 block, if any. */
function blockEndMs(r: OutageResult): number | undefined {
  const ends = r.calls
    .filter((c) => c.status === 429 && c.retryAfterSeconds !== undefined)
    .map((c) => c.atMs + (c.retryAfterSeconds ?? 0) * 1000);
  return ends.length > 0 ? Math.max(...ends) : undefined;
}

describe("outage pacing: a single hot chain", () => {
  for (const kind of ["503", "bare 400"] as const) {
    for (const minutes of [5, 10, 15, 20, 30, 60]) {
      const target = targetDelaySeconds(minutes, 1);
      it(`after ${minutes} min of ${kind}: a new token within ${target / 60} min of Exact being back`, async () => {
        const r = await runOutage({
          kind,
          outageMinutes: minutes,
          chains: 1,
          afterMaxMinutes: target / 60 + 3,
        });

        expectNothingLost(r);
        expectServedWithin(r, target);
        expectPaced(r);
      }, 60_000);
    }
  }

  // The other reading: Exact counts maintenance pages. A single chain then meets Exact's error
  // limit (10 in a clock hour) in a long outage, and its user is blocked until the hour ends. The
  // broker honours the block (no call into it, nothing counted twice), loses nothing, and has a
  // token within 2 minutes of the later of Exact's return and the block's end.
  for (const minutes of [5, 20, 60]) {
    it(`after ${minutes} min of bare 400 that Exact counts: a new token within the targets, or within 2 min of the block's end if Exact's error limit blocked the user past its return`, async () => {
      const r = await runOutage({
        kind: "bare 400, counted",
        outageMinutes: minutes,
        chains: 1,
        afterMaxMinutes: 65,
      });

      expectNothingLost(r);
      expectPaced(r);
      const block = blockEndMs(r);
      const firstToken = r.calls.find((c) => c.atMs >= r.backAtMs && c.outcome === "tokens");
      expect(
        firstToken,
        `no token in the ${Math.round((r.endMs - r.backAtMs) / 60_000)} min after`,
      ).toBeDefined();
      if (block !== undefined && block > r.backAtMs) {
        expect((firstToken?.atMs ?? 0) - block).toBeLessThanOrEqual(120_000);
      } else {
        expect((firstToken?.atMs ?? 0) - r.backAtMs).toBeLessThanOrEqual(
          targetDelaySeconds(minutes, 1) * 1000,
        );
      }
      // Nothing sent into the block.
      const firstLimited = r.calls.find((c) => c.status === 429);
      if (block !== undefined && firstLimited) {
        expect(r.calls.filter((c) => c.atMs > firstLimited.atMs && c.atMs < block)).toEqual([]);
      }
    }, 90_000);
  }
});
