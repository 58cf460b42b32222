import { setTimeout as delay } from "node:timers/promises";
import { errorLimitKey } from "./error-limit.js";
import { errorLimited, faultRateLimited, faultStatus } from "./exact-answers.js";
import type { Endpoint } from "./faults.js";
import type { Answer } from "./http.js";
import { scriptedAnswer } from "./scripts.js";
import type { Simulation } from "./simulation.js";
import type { User } from "./state.js";
import type { OutcomeByEndpoint } from "./stats.js";

/** What an endpoint made of a request it has parsed but not yet processed. */
export interface PreparedRequest<E extends Endpoint = Endpoint> {
  endpoint: E;
  /** As far as the request tells: faults and the error limit are keyed by it before processing. */
  clientId: string | undefined;
  user: User | undefined;
  /** Applies Exact's rules; changes state only when the answer is a success (or a rotation variant). */
  process(): { answer: Answer; outcome: OutcomeByEndpoint[E] };
}

/** How the pipeline answers: with an HTTP answer, or by resetting the connection. */
export interface Reply {
  send(answer: Answer): void;
  reset(): void;
}

/**
 * The path of every request to an Exact-facing endpoint:
 *
 *   fault?  ── latency ─────────────► wait, then go on
 *           ── status / rate_limit ─► answer, nothing processed
 *           ── reset ───────────────► RST, nothing processed
 *   error limit blocked? ───────────► 429, nothing processed (a script waits)
 *   script? ── process ─────────────► process (Exact's rules), then the scripted answer
 *           ── otherwise ───────────► the scripted answer, nothing processed
 *   process (Exact's rules)
 *   fault rotate_then_drop? ────────► RST instead of the answer (the state change stays)
 *   answer; a 4xx counts toward the error limit (a script's only if `counted`)
 *
 * Faulted requests never count toward the error limit: they model trouble between client and
 * Exact, which Exact's error counter would not see (or, for rotate_then_drop, a success).
 * Scripted answers are Exact's answers: a scripted 4xx counts, unless the script says Exact's
 * counter would not see it (`counted: false`). Every request is counted in the
 * stats under exactly one outcome.
 */
export async function serveExactRequest(
  sim: Simulation,
  request: PreparedRequest,
  reply: Reply,
): Promise<void> {
  const pairKey = sim.pairKeyFor(request.clientId, request.user);
  const record = (outcome: OutcomeByEndpoint[Endpoint]): void =>
    sim.stats.record(request.endpoint, outcome, pairKey);

  const fault = sim.faults.take(request.endpoint, request.clientId);
  switch (fault?.kind) {
    case "latency":
      await delay(fault.latencyMs);
      break;
    case "status":
      record("fault_status");
      return reply.send(faultStatus(fault.status));
    case "rate_limit":
      record("fault_rate_limit");
      return reply.send(faultRateLimited(fault.rateLimitHeaders, sim.clock.nowMs()));
    case "reset":
      record("fault_reset");
      return reply.reset();
  }

  const nowMs = sim.clock.nowMs();
  const limitKey = errorLimitKey(request.clientId, request.user?.userId, request.endpoint);
  const blockedUntilMs = sim.errorLimiter.blockedUntilMs(limitKey, nowMs);
  const {
    answer,
    outcome,
    counted = true,
  } = blockedUntilMs === undefined
    ? processOrScript(sim, request, fault?.kind === "rotate_then_drop")
    : { answer: errorLimited(blockedUntilMs, nowMs), outcome: "error_limited" as const };

  if (fault?.kind === "rotate_then_drop") {
    record("fault_rotate_then_drop");
    return reply.reset();
  }
  record(outcome);
  if (counted && answer.status >= 400 && answer.status < 500) {
    sim.errorLimiter.recordError(limitKey, nowMs);
  }
  reply.send(answer);
}

/**
 * Exact's answer: the rules', or a script's when one matches the request's endpoint and client.
 * A request whose answer a fault will drop leaves the scripts alone.
 */
function processOrScript(
  sim: Simulation,
  request: PreparedRequest,
  dropped: boolean,
): { answer: Answer; outcome: OutcomeByEndpoint[Endpoint]; counted?: boolean } {
  const script = dropped ? undefined : sim.scripts.take(request.endpoint, request.clientId);
  if (script === undefined) {
    return request.process();
  }
  const processed = script.process ? request.process().answer : undefined;
  return { answer: scriptedAnswer(script, processed), outcome: "scripted", counted: script.counted };
}
