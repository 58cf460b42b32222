import { type HttpOutcome, type HttpRequest, type HttpSend, sendHttp } from "../../lib/exact/http.js";
import type { CampaignClock } from "./campaign-clock.js";
import { CallKind, Fault, type Tap } from "./fault-plan.js";

/** Which of Exact's calls a request is. */
export const ExactCallType = {
  /** POST /api/oauth2/token: a refresh or a code exchange. */
  Token: "token",
  Me: "me",
  /** GET /api/v1/{division}/system/Divisions: whether the chain's user can open a division (division-check.ts). */
  Divisions: "divisions",
  /** A login page; `credentials` marks the POST to SelfAsserted, where a login is decided. */
  LoginPage: "login",
} as const;
export type ExactCallType = (typeof ExactCallType)[keyof typeof ExactCallType];

export interface ExactCall {
  readonly name: string;
  readonly type: ExactCallType;
  readonly credentials: boolean;
  readonly request: HttpRequest;
}

/** The case's side: what it records and checks around Exact's calls. */
export interface ExactWatch {
  /** A call that may reach Exact is about to go out (nothing for a refused connection). */
  starts(tap: Tap, call: ExactCall, atMs: number): Promise<void>;
  /**
   * The call is over for its holder: `delivered` is what the holder got, `actual` what Exact
   * answered (undefined when the request never reached Exact, or the holder crashed), and
   * `untilMs` when the call stopped possibly being in flight.
   */
  ends(
    tap: Tap,
    call: ExactCall,
    result: {
      readonly startMs: number;
      readonly untilMs: number;
      readonly delivered?: HttpOutcome;
      readonly actual?: HttpOutcome;
    },
  ): void;
}

const B2C_PREFIX = /^\/login\.exact\.com\/[^/]+\/[^/]+\//;
const DIVISIONS_PATH = /^\/api\/v1\/\d+\/system\/divisions$/i;

function describe(request: HttpRequest): ExactCall {
  const path = new URL(request.url).pathname;
  if (path === "/api/oauth2/token") {
    return { name: "exact:token", type: ExactCallType.Token, credentials: false, request };
  }
  if (path.toLowerCase() === "/api/v1/current/me") {
    return { name: "exact:me", type: ExactCallType.Me, credentials: false, request };
  }
  if (DIVISIONS_PATH.test(path)) {
    return { name: "exact:divisions", type: ExactCallType.Divisions, credentials: false, request };
  }
  const page = path.replace(B2C_PREFIX, "b2c/");
  return {
    name: `${CallKind.Login}:${request.method} ${page}`,
    type: ExactCallType.LoginPage,
    credentials: page.endsWith("/SelfAsserted"),
    request,
  };
}

/**
 * The HttpSend every invocation's OAuth client and login driver use: the real one (a fresh
 * connection to the simulator per request) behind the tap. Calls are named by path
 * (`exact:token`, `exact:me`, `exact:divisions`, `login:POST b2c/SelfAsserted`, …).
 */
export function tappedSend(tap: Tap, clock: CampaignClock, watch: ExactWatch): HttpSend {
  return async (request) => {
    const call = describe(request);
    const fault = await tap.next(call.name);
    if (fault === Fault.Exception) {
      return { kind: "not_sent", cause: new Error(`injected: connection refused (${call.name})`) };
    }
    const startMs = clock.now();
    await watch.starts(tap, call, startMs);
    if (fault === Fault.Crash) {
      // The request may have gone out before the holder died: it may be in flight until its timeout.
      watch.ends(tap, call, { startMs, untilMs: startMs + request.timeoutMs });
      return tap.crash();
    }
    const actual = await sendHttp(request);
    let delivered: HttpOutcome = actual;
    if (fault === Fault.Hang) {
      // The client's own timeout: Exact processed the request, the answer comes too late.
      clock.advanceMs(request.timeoutMs);
      delivered = { kind: "unknown", cause: new Error(`injected: no answer within ${request.timeoutMs} ms`) };
    } else if (fault === Fault.Lost) {
      delivered = { kind: "unknown", cause: new Error("injected: connection reset after the request") };
    }
    watch.ends(tap, call, { startMs, untilMs: clock.now(), delivered, actual });
    return delivered;
  };
}
