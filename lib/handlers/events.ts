import type { CallerIdentity } from "../auth/caller-identity.js";
import { CONNECTION_ID_PATTERN } from "./connection-id.js";
import {
  type EventSchema,
  eventSchema,
  isIntegerIn,
  isObject,
  isStringOf,
  type Report,
  refuseUnknownFields,
} from "./event-schema.js";

export { CONNECTION_ID_PATTERN };

const CONNECTION_ID_RULE =
  "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit";

function checkConnectionId(value: unknown, report: Report): void {
  if (value === undefined) report("connectionId", "is required");
  else if (typeof value !== "string" || !CONNECTION_ID_PATTERN.test(value)) {
    report("connectionId", CONNECTION_ID_RULE);
  }
}

/** The bounds of a {@link CallerIdentity}'s shape; see {@link checkCallerIdentity}. */
const MAX_HEADERS = 16;
const MAX_HEADER_NAME_CHARS = 64;
const MAX_HEADER_VALUE_CHARS = 8192;
const MAX_BODY_CHARS = 256;
const CALLER_IDENTITY_FIELDS: ReadonlySet<string> = new Set(["headers", "body"]);

/**
 * A consumer's signed sts:GetCallerIdentity request (lib/auth/caller-identity.ts). Only its shape
 * is checked here: a shape that is not this (not an object, a header that is not a string, too
 * many or too long) is a client bug and answers ValidationError; what the headers say is checked
 * by the authorizer and answers AccessDenied. The bounds are far above a real request (7 headers,
 * a session token of 1 KB or so, more with session tags and policies; a 43-byte body) and keep a
 * junk event cheap to refuse. Header names and values are never quoted: values hold the session token.
 */
function checkCallerIdentity(value: unknown, report: Report): void {
  if (!isObject(value)) {
    report("callerIdentity", "must be an object with headers and body");
    return;
  }
  refuseUnknownFields(value, CALLER_IDENTITY_FIELDS, "callerIdentity", report);
  const { headers, body } = value;
  if (!isObject(headers)) report("callerIdentity.headers", "must be an object of header names to values");
  else {
    const entries = Object.entries(headers);
    if (entries.length > MAX_HEADERS) report("callerIdentity.headers", `at most ${MAX_HEADERS} headers`);
    if (entries.some(([name]) => !isStringOf(name, 1, MAX_HEADER_NAME_CHARS))) {
      report("callerIdentity.headers", `header names must be 1-${MAX_HEADER_NAME_CHARS} characters`);
    }
    if (entries.some(([, text]) => !isStringOf(text, 0, MAX_HEADER_VALUE_CHARS))) {
      report(
        "callerIdentity.headers",
        `header values must be strings of at most ${MAX_HEADER_VALUE_CHARS} characters`,
      );
    }
  }
  if (!isStringOf(body, 0, MAX_BODY_CHARS)) {
    report("callerIdentity.body", `must be a string of at most ${MAX_BODY_CHARS} characters`);
  }
}

/**
 * token-vend's event; `minValiditySeconds` is capped by Exact's refresh window, `callerIdentity`
 * proves the caller's AWS identity (required under VEND_AUTHORIZATION=perConnection; see README),
 * `rejectedGeneration` is the generation whose access token Exact refused the caller (an integer
 * from 1; one above the connection's current generation is refused by the vend door, which alone
 * knows it). The object is strict: a broker older than a field refuses events that carry it.
 */
export interface VendEvent {
  readonly connectionId: string;
  readonly minValiditySeconds?: number | undefined;
  readonly callerIdentity?: CallerIdentity | undefined;
  readonly rejectedGeneration?: number | undefined;
}

const VEND_EVENT_FIELDS: ReadonlySet<string> = new Set([
  "connectionId",
  "minValiditySeconds",
  "callerIdentity",
  "rejectedGeneration",
]);

/** Checks a {@link VendEvent}; optional fields may be absent or undefined. */
export function vendEventSchema(refreshWindowSeconds: number): EventSchema<VendEvent> {
  return eventSchema<VendEvent>((event, report) => {
    if (!isObject(event)) {
      report("event", "must be an object");
      return;
    }
    refuseUnknownFields(event, VEND_EVENT_FIELDS, "event", report);
    checkConnectionId(event.connectionId, report);
    const { minValiditySeconds, callerIdentity, rejectedGeneration } = event;
    if (minValiditySeconds !== undefined && !isIntegerIn(minValiditySeconds, 0, refreshWindowSeconds)) {
      report("minValiditySeconds", `must be an integer from 0 to ${refreshWindowSeconds}`);
    }
    if (callerIdentity !== undefined) checkCallerIdentity(callerIdentity, report);
    if (rejectedGeneration !== undefined && !isIntegerIn(rejectedGeneration, 1)) {
      report("rejectedGeneration", "must be an integer from 1");
    }
  });
}

/** The EventBridge scheduled event; only its shape is checked, its content is not used. */
export interface ScheduledEvent {
  readonly "detail-type": "Scheduled Event";
  readonly source: "aws.events";
  readonly [field: string]: unknown;
}

/** Checks a {@link ScheduledEvent}; other fields (`detail`, `time`, …) pass as they are. */
export const scheduledEventSchema: EventSchema<ScheduledEvent> = eventSchema<ScheduledEvent>(
  (event, report) => {
    if (!isObject(event)) {
      report("event", "must be an object");
      return;
    }
    if (event["detail-type"] !== "Scheduled Event") report("detail-type", 'must be "Scheduled Event"');
    if (event.source !== "aws.events") report("source", 'must be "aws.events"');
  },
);

/** fallback-login's event; `operator` is what `exact-broker heal` sends (see HealDoor.heal). */
export interface HealEvent {
  readonly connectionId: string;
  readonly operator?: boolean | undefined;
}

const HEAL_EVENT_FIELDS: ReadonlySet<string> = new Set(["connectionId", "operator"]);

/** Checks a {@link HealEvent}, strictly. */
export const healEventSchema: EventSchema<HealEvent> = eventSchema<HealEvent>((event, report) => {
  if (!isObject(event)) {
    report("event", "must be an object");
    return;
  }
  refuseUnknownFields(event, HEAL_EVENT_FIELDS, "event", report);
  checkConnectionId(event.connectionId, report);
  if (event.operator !== undefined && typeof event.operator !== "boolean") {
    report("operator", "must be true or false");
  }
});
