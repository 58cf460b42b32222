import { ValidationError } from "../errors.js";
import { isLoginPage, LOGIN_PAGES, type LoginPage, PAGE_PARTS } from "./page-parts.js";
import { mulberry32 } from "./prng.js";
import {
  asObject,
  type JsonObject,
  optionalBoolean,
  optionalNumber,
  optionalString,
  rejectUnknownKeys,
  requiredNumber,
  requiredString,
} from "./validate.js";

export const FaultKind = {
  latency: "latency",
  status: "status",
  rateLimit: "rate_limit",
  reset: "reset",
  rotateThenDrop: "rotate_then_drop",
  refuse: "refuse",
  breakPage: "break_page",
} as const;
export type FaultKind = (typeof FaultKind)[keyof typeof FaultKind];

/** The Exact-facing endpoints a fault can target. */
export type Endpoint = "token" | "me";

/** The body of `POST /_sim/faults` (and the argument of `Simulator.addFault`). */
export interface FaultSpec {
  kind: FaultKind;
  /** Only requests of this client (the token request's `client_id`, the access token's app). @default any */
  clientId?: string;
  /** @default "*" */
  endpoint?: Endpoint | "*";
  /** The next N matching requests. The default when `probability` is absent: 1. */
  count?: number;
  /** Each matching request is hit with this probability, until the fault is deleted. */
  probability?: number;
  /** Seed of the fault's own PRNG (mulberry32), for reproducible runs. @default 1 */
  seed?: number;
  /** kind latency: the delay before normal processing. */
  latencyMs?: number;
  /** kind status. @default 500 */
  status?: 500 | 503;
  /** kind rate_limit: send the X-RateLimit-Minutely-* headers. @default true */
  rateLimitHeaders?: boolean;
  /** kind refuse: how long the port refuses connections. */
  durationMs?: number;
  /** kind break_page: the login page served without a part. */
  page?: LoginPage;
  /** kind break_page: the part left out, one of the page's parts (see page-parts.ts). */
  missing?: string;
}

/** What a per-request fault does to the request it hits. */
export type RequestFaultEffect =
  | { kind: "latency"; latencyMs: number }
  | { kind: "status"; status: 500 | 503 }
  | { kind: "rate_limit"; rateLimitHeaders: boolean }
  | { kind: "reset" }
  | { kind: "rotate_then_drop" };

export interface FaultTrigger {
  clientId: string | undefined;
  endpoint: Endpoint | "*";
  count: number | undefined;
  probability: number | undefined;
  seed: number | undefined;
}

/**
 * A login page served without one of its parts, for the next `count` times it is served. It
 * models Exact changing a page, not a network fault, so it has no client, endpoint or chance.
 */
export interface PageBreak {
  kind: "break_page";
  page: LoginPage;
  missing: string;
  count: number;
}

/**
 * A connection refusal happens before any byte of a request arrives, so it cannot be matched
 * to a client or an endpoint, nor counted: it is a period of the whole port.
 */
export type ParsedFault =
  | { kind: "refuse"; durationMs: number }
  | PageBreak
  | { trigger: FaultTrigger; effect: RequestFaultEffect };

/** A registered fault as `GET /_sim/faults` shows it; `count` is what is left of it. */
export type FaultView = ({ id: string } & FaultTrigger & RequestFaultEffect) | ({ id: string } & PageBreak);

const MAX_DELAY_MS = 10 * 60 * 1000;
const TRIGGER_KEYS = ["kind", "clientId", "endpoint", "count", "probability", "seed"] as const;

export function parseFaultSpec(value: unknown): ParsedFault {
  const what = "fault";
  const object = asObject(value, what);
  const kind = object.kind;
  if (kind === FaultKind.refuse) {
    rejectUnknownKeys(
      object,
      ["kind", "durationMs"],
      `${what} refuse (a whole-port period, not per request)`,
    );
    return {
      kind,
      durationMs: requiredNumber(object, "durationMs", { min: 1, max: MAX_DELAY_MS, integer: true }, what),
    };
  }
  if (kind === FaultKind.breakPage) {
    return parsePageBreak(object, what);
  }
  const effect = parseEffect(object, what);
  return { trigger: parseTrigger(object, what), effect };
}

function parseEffect(object: JsonObject, what: string): RequestFaultEffect {
  switch (object.kind) {
    case FaultKind.latency:
      rejectUnknownKeys(object, [...TRIGGER_KEYS, "latencyMs"], what);
      return {
        kind: "latency",
        latencyMs: requiredNumber(object, "latencyMs", { min: 0, max: MAX_DELAY_MS, integer: true }, what),
      };
    case FaultKind.status: {
      rejectUnknownKeys(object, [...TRIGGER_KEYS, "status"], what);
      const status = object.status ?? 500;
      if (status !== 500 && status !== 503) {
        throw new ValidationError(`${what}: "status" must be 500 or 503`);
      }
      return { kind: "status", status };
    }
    case FaultKind.rateLimit:
      rejectUnknownKeys(object, [...TRIGGER_KEYS, "rateLimitHeaders"], what);
      return {
        kind: "rate_limit",
        rateLimitHeaders: optionalBoolean(object, "rateLimitHeaders", what) ?? true,
      };
    case FaultKind.reset:
    case FaultKind.rotateThenDrop:
      rejectUnknownKeys(object, TRIGGER_KEYS, what);
      return { kind: object.kind };
    default:
      throw new ValidationError(`${what}: "kind" must be one of ${Object.values(FaultKind).join(", ")}`);
  }
}

function parsePageBreak(object: JsonObject, what: string): PageBreak {
  rejectUnknownKeys(object, ["kind", "page", "missing", "count"], `${what} break_page`);
  const page = object.page;
  if (!isLoginPage(page)) {
    throw new ValidationError(`${what}: "page" must be one of ${LOGIN_PAGES.join(", ")}`);
  }
  const missing = requiredString(object, "missing", what);
  if (!PAGE_PARTS[page].includes(missing)) {
    throw new ValidationError(
      `${what}: "missing" for page ${page} must be one of ${PAGE_PARTS[page].join(", ")}`,
    );
  }
  const count = optionalNumber(object, "count", { min: 1, max: 1_000_000, integer: true }, what) ?? 1;
  return { kind: "break_page", page, missing, count };
}

function parseTrigger(object: JsonObject, what: string): FaultTrigger {
  const endpoint = object.endpoint ?? "*";
  if (endpoint !== "token" && endpoint !== "me" && endpoint !== "*") {
    throw new ValidationError(`${what}: "endpoint" must be "token", "me" or "*"`);
  }
  const count = optionalNumber(object, "count", { min: 1, max: 1_000_000, integer: true }, what);
  const probability = optionalNumber(object, "probability", { min: 0, max: 1 }, what);
  const seed = optionalNumber(object, "seed", { min: 0, max: 2 ** 32 - 1, integer: true }, what);
  if (count !== undefined && probability !== undefined) {
    throw new ValidationError(`${what}: give "count" or "probability", not both`);
  }
  if (seed !== undefined && probability === undefined) {
    throw new ValidationError(`${what}: "seed" only goes with "probability"`);
  }
  return {
    clientId: optionalString(object, "clientId", what),
    endpoint,
    count: probability === undefined ? (count ?? 1) : undefined,
    probability,
    seed: probability === undefined ? undefined : (seed ?? 1),
  };
}

interface ActiveFault {
  id: string;
  trigger: FaultTrigger;
  effect: RequestFaultEffect;
  chance: { probability: number; draw: () => number } | undefined;
}

type ActivePageBreak = { id: string } & PageBreak;

/**
 * Per-request faults, matched in order of creation; the first that hits a request wins. Page
 * breaks share the list (and so the ids, the listing and `clear`) but only hit login pages.
 */
export class FaultRegistry {
  private faults: (ActiveFault | ActivePageBreak)[] = [];

  add(id: string, trigger: FaultTrigger, effect: RequestFaultEffect): void {
    const chance =
      trigger.probability === undefined
        ? undefined
        : { probability: trigger.probability, draw: mulberry32(trigger.seed ?? 1) };
    this.faults.push({ id, trigger: { ...trigger }, effect, chance });
  }

  addPageBreak(id: string, pageBreak: PageBreak): void {
    this.faults.push({ id, ...pageBreak });
  }

  /** The part to leave out of `page` this time, if a page break hits it; uses the break up. */
  takePageBreak(page: LoginPage): string | undefined {
    const hit = this.faults.find((fault): fault is ActivePageBreak => "page" in fault && fault.page === page);
    if (hit === undefined) {
      return undefined;
    }
    hit.count -= 1;
    if (hit.count <= 0) {
      this.faults = this.faults.filter((other) => other !== hit);
    }
    return hit.missing;
  }

  /**
   * The fault that hits this request, if any. A counted fault is used up by the hit; a
   * probabilistic one draws once per matching request and stays until deleted.
   */
  take(endpoint: Endpoint, clientId: string | undefined): RequestFaultEffect | undefined {
    for (const fault of this.faults) {
      if ("page" in fault) continue;
      const { trigger } = fault;
      if (trigger.endpoint !== "*" && trigger.endpoint !== endpoint) continue;
      if (trigger.clientId !== undefined && trigger.clientId !== clientId) continue;
      if (fault.chance !== undefined) {
        if (fault.chance.draw() < fault.chance.probability) return fault.effect;
        continue;
      }
      trigger.count = (trigger.count ?? 1) - 1;
      if (trigger.count <= 0) {
        this.faults = this.faults.filter((other) => other !== fault);
      }
      return fault.effect;
    }
    return undefined;
  }

  list(): FaultView[] {
    return this.faults.map((fault) =>
      "page" in fault ? { ...fault } : { id: fault.id, ...fault.effect, ...fault.trigger },
    );
  }

  /** Removes every registered fault; returns how many there were. */
  clear(): number {
    const removed = this.faults.length;
    this.faults = [];
    return removed;
  }
}
