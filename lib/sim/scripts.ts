import { ValidationError } from "../errors.js";
import type { Endpoint } from "./faults.js";
import type { Answer } from "./http.js";
import {
  asObject,
  type JsonObject,
  optionalBoolean,
  optionalNumber,
  rejectUnknownKeys,
  requiredNumber,
  requiredString,
} from "./validate.js";

/**
 * What a script answers: the token endpoint, `/current/Me`, or the REST API's collections
 * (`GET /api/v1/{division}/…`, every division and collection alike).
 */
export type ScriptEndpoint = Endpoint | "api";

/**
 * The body of `POST /_sim/scripts` (and the argument of `Simulator.addScript`): the next `count`
 * requests of one client to one endpoint get this answer, given verbatim, so that an answer
 * someone reported from the real Exact becomes a test in a few lines.
 */
export interface ScriptSpec {
  endpoint: ScriptEndpoint;
  /** The token request's `client_id`, or the app of the access token sent to `/current/Me` or the REST API. */
  clientId: string;
  /** @default 1 */
  count?: number;
  /** endpoint token: process the request first (a refresh rotates the chain), then answer this. @default false */
  process?: boolean;
  /** With `process` and an object `json`: the issued `access_token` and `refresh_token` are merged into it. @default false */
  mergePair?: boolean;
  /**
   * Whether a 4xx answer counts toward the error limit. `false` models an answer Exact's error
   * counter never sees, such as a gateway's maintenance page (whether Exact counts those is
   * unconfirmed). @default true
   */
  counted?: boolean;
  status: number;
  /** Sent as given; Content-Type goes in `contentType`, Content-Length is the simulator's. */
  headers?: Record<string, string>;
  /** @default `application/json; charset=utf-8` with `json`, `text/plain; charset=utf-8` with `body`, none without a body */
  contentType?: string;
  /** The body, byte for byte (UTF-8). */
  body?: string;
  /** Or a JSON value, sent serialized. */
  json?: unknown;
}

/** A checked script: what `take` hands the pipeline and `GET /_sim/scripts` lists. */
export interface Script {
  endpoint: ScriptEndpoint;
  clientId: string;
  count: number;
  process: boolean;
  mergePair: boolean;
  counted: boolean;
  status: number;
  headers: Record<string, string>;
  contentType: string | undefined;
  body: string | undefined;
  json: unknown;
}

/** A registered script as `GET /_sim/scripts` shows it; `count` is what is left of it. */
export type ScriptView = { id: string } & Script;

const WHAT = "script";
const KEYS = [
  "endpoint",
  "clientId",
  "count",
  "process",
  "mergePair",
  "counted",
  "status",
  "headers",
  "contentType",
  "body",
  "json",
] as const;
/** Statuses that carry no body in HTTP: a script could not send what it says. */
const BODILESS_STATUSES = [204, 205, 304];
const MAX_BODY_BYTES = 16 * 1024;
const MAX_HEADERS = 50;
const MAX_HEADER_VALUE_LENGTH = 8192;
const MAX_CONTENT_TYPE_LENGTH = 256;
/** RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Printable ASCII with inner spaces and tabs: what every client reads the same way. */
const HEADER_VALUE = /^(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?$/;
/** Framing headers belong to the simulator; Content-Type has its own field. */
const RESERVED_HEADERS = ["content-type", "content-length", "transfer-encoding", "connection"];

function isHeaderValue(value: string, maxLength: number): boolean {
  return value.length <= maxLength && HEADER_VALUE.test(value);
}

function parseHeaders(object: JsonObject): Record<string, string> {
  const value = object.headers;
  if (value === undefined) {
    return {};
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ValidationError(`${WHAT}: "headers" must be an object of header names to string values`);
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_HEADERS) {
    throw new ValidationError(`${WHAT}: at most ${MAX_HEADERS} headers`);
  }
  const seen = new Set<string>();
  for (const [name, headerValue] of entries) {
    if (!HEADER_NAME.test(name)) {
      throw new ValidationError(`${WHAT}: header name ${JSON.stringify(name)} is not a valid HTTP token`);
    }
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.includes(lower)) {
      throw new ValidationError(
        `${WHAT}: header "${name}" is set by the simulator (use "contentType" for Content-Type)`,
      );
    }
    if (seen.has(lower)) {
      throw new ValidationError(`${WHAT}: header "${name}" given twice (names are case-insensitive)`);
    }
    seen.add(lower);
    if (typeof headerValue !== "string" || !isHeaderValue(headerValue, MAX_HEADER_VALUE_LENGTH)) {
      throw new ValidationError(
        `${WHAT}: header "${name}" must be a valid HTTP header value (printable ASCII, inner spaces and tabs, at most ${MAX_HEADER_VALUE_LENGTH} characters)`,
      );
    }
  }
  return Object.fromEntries(entries) as Record<string, string>;
}

function checkBodySize(text: string, key: string): void {
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) {
    throw new ValidationError(`${WHAT}: "${key}" is larger than ${MAX_BODY_BYTES} bytes`);
  }
}

/** A deep copy of a JSON value, or a ValidationError for what JSON cannot carry. */
function parseJsonValue(value: unknown): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new ValidationError(`${WHAT}: "json" must be a JSON value`, { cause: error });
  }
  if (typeof text !== "string") {
    throw new ValidationError(`${WHAT}: "json" must be a JSON value`);
  }
  checkBodySize(text, "json");
  return JSON.parse(text);
}

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function parseScriptSpec(value: unknown): Script {
  const object = asObject(value, WHAT);
  rejectUnknownKeys(object, KEYS, WHAT);
  const endpoint = object.endpoint;
  if (endpoint !== "token" && endpoint !== "me" && endpoint !== "api") {
    throw new ValidationError(`${WHAT}: "endpoint" must be "token", "me" or "api"`);
  }
  const clientId = requiredString(object, "clientId", WHAT);
  const count = optionalNumber(object, "count", { min: 1, max: 1_000_000, integer: true }, WHAT) ?? 1;
  const status = requiredNumber(object, "status", { min: 200, max: 599, integer: true }, WHAT);
  if (BODILESS_STATUSES.includes(status)) {
    throw new ValidationError(`${WHAT}: "status" ${status} carries no body; use another`);
  }
  const headers = parseHeaders(object);
  const contentType = object.contentType;
  if (
    contentType !== undefined &&
    (typeof contentType !== "string" ||
      contentType === "" ||
      !isHeaderValue(contentType, MAX_CONTENT_TYPE_LENGTH))
  ) {
    throw new ValidationError(
      `${WHAT}: "contentType" must be a valid HTTP header value of at most ${MAX_CONTENT_TYPE_LENGTH} characters`,
    );
  }
  if (object.body !== undefined && object.json !== undefined) {
    throw new ValidationError(`${WHAT}: give "body" or "json", not both`);
  }
  const body = object.body;
  if (body !== undefined) {
    if (typeof body !== "string") {
      throw new ValidationError(`${WHAT}: "body" must be a string (use "json" for a JSON value)`);
    }
    checkBodySize(body, "body");
  }
  const json = object.json === undefined ? undefined : parseJsonValue(object.json);
  const process = optionalBoolean(object, "process", WHAT) ?? false;
  if (process && endpoint !== "token") {
    throw new ValidationError(`${WHAT}: "process" only goes with endpoint "token"`);
  }
  const mergePair = optionalBoolean(object, "mergePair", WHAT) ?? false;
  if (mergePair && !process) {
    throw new ValidationError(`${WHAT}: "mergePair" needs "process": true`);
  }
  if (mergePair && !isJsonObject(json)) {
    throw new ValidationError(`${WHAT}: "mergePair" needs "json" to be an object`);
  }
  const counted = optionalBoolean(object, "counted", WHAT) ?? true;
  return { endpoint, clientId, count, process, mergePair, counted, status, headers, contentType, body, json };
}

/** The tokens a processed request issued, as its answer's body carries them. */
function issuedPair(processed: Answer | undefined): JsonObject {
  const body = processed?.body;
  if (!isJsonObject(body)) {
    return {};
  }
  const pair: JsonObject = {};
  for (const key of ["access_token", "refresh_token"]) {
    if (typeof body[key] === "string") pair[key] = body[key];
  }
  return pair;
}

/**
 * The answer a script prescribes. `processed` is what Exact's rules answered when the script
 * processes the request; with `mergePair`, the tokens it issued (if any) join the scripted JSON.
 */
export function scriptedAnswer(script: Script, processed: Answer | undefined): Answer {
  const headers = { ...script.headers };
  if (script.json !== undefined) {
    const json = script.mergePair
      ? { ...(script.json as JsonObject), ...issuedPair(processed) }
      : script.json;
    return {
      status: script.status,
      headers,
      raw: {
        text: JSON.stringify(json),
        contentType: script.contentType ?? "application/json; charset=utf-8",
      },
    };
  }
  if (script.body !== undefined) {
    return {
      status: script.status,
      headers,
      raw: { text: script.body, contentType: script.contentType ?? "text/plain; charset=utf-8" },
    };
  }
  return { status: script.status, headers, raw: { text: "", contentType: script.contentType } };
}

/**
 * Scripts, matched in order of creation by endpoint and client; the first that matches a
 * request answers it and is used up by one.
 */
export class ScriptRegistry {
  private scripts: ScriptView[] = [];

  add(id: string, script: Script): void {
    this.scripts.push({ id, ...script });
  }

  take(endpoint: ScriptEndpoint, clientId: string | undefined): Script | undefined {
    const hit = this.scripts.find((script) => script.endpoint === endpoint && script.clientId === clientId);
    if (hit === undefined) {
      return undefined;
    }
    hit.count -= 1;
    if (hit.count <= 0) {
      this.scripts = this.scripts.filter((other) => other !== hit);
    }
    return hit;
  }

  list(): ScriptView[] {
    return this.scripts.map((script) => ({ ...script, headers: { ...script.headers } }));
  }

  /** Removes every script; returns how many there were. */
  clear(): number {
    const removed = this.scripts.length;
    this.scripts = [];
    return removed;
  }
}
