import { ParseError } from "@aws-lambda-powertools/parser";
import { describe, expect, it } from "vitest";
import { toEdgeError } from "../../lib/handlers/error-boundary.js";
import type { EventSchema } from "../../lib/handlers/event-schema.js";
import { healEventSchema, scheduledEventSchema, vendEventSchema } from "../../lib/handlers/events.js";

const WINDOW_SECONDS = 30;

/** What the parser middleware does with a schema's answer: the value, or a ParseError carrying the issues. */
function parse<T>(schema: EventSchema<T>, event: unknown): T {
  const result = schema["~standard"].validate(event);
  if ("issues" in result) throw new ParseError("Failed to parse schema", { cause: result.issues });
  return result.value;
}

/** The ValidationError message a caller gets for an event the schema refuses. */
function refusal(schema: EventSchema<unknown>, event: unknown): string {
  try {
    parse(schema, event);
  } catch (error) {
    const edge = toEdgeError(error);
    expect(edge.name).toBe("ValidationError");
    return edge.message;
  }
  throw new Error("expected the event to be refused");
}

const IDENTITY = { headers: { Authorization: "AWS4-HMAC-SHA256 …" }, body: "Action=GetCallerIdentity" };

describe("vendEventSchema", () => {
  const schema = vendEventSchema(WINDOW_SECONDS);

  it.each([
    ["the connection ID alone", { connectionId: "acme" }],
    [
      "every field",
      { connectionId: "a.b_c-1", minValiditySeconds: 30, callerIdentity: IDENTITY, rejectedGeneration: 3 },
    ],
    ["optional fields left undefined", { connectionId: "acme", minValiditySeconds: undefined }],
    ["a minValiditySeconds of 0", { connectionId: "acme", minValiditySeconds: 0 }],
  ])("passes %s on unchanged", (_label, event) => {
    expect(parse(schema, event)).toBe(event);
  });

  it.each([
    [{}, "invalid event: connectionId: is required"],
    ["acme", "invalid event: event: must be an object"],
    [null, "invalid event: event: must be an object"],
    [[{ connectionId: "acme" }], "invalid event: event: must be an object"],
    [
      { connectionId: "../etc" },
      "invalid event: connectionId: must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
    ],
    [
      { connectionId: "acme", minValiditySeconds: 31 },
      "invalid event: minValiditySeconds: must be an integer from 0 to 30",
    ],
    [
      { connectionId: "acme", minValiditySeconds: 1.5 },
      "invalid event: minValiditySeconds: must be an integer from 0 to 30",
    ],
    [
      { connectionId: "acme", rejectedGeneration: "1" },
      "invalid event: rejectedGeneration: must be an integer from 1",
    ],
    [{ connectionId: "acme", refreshToken: "x" }, 'invalid event: event: unknown field "refreshToken"'],
    [
      { connectionId: "acme", callerIdentity: "signed" },
      "invalid event: callerIdentity: must be an object with headers and body",
    ],
    [
      { connectionId: "acme", callerIdentity: { ...IDENTITY, url: "https://sts" } },
      'invalid event: callerIdentity: unknown field "url"',
    ],
    [
      { connectionId: "acme", callerIdentity: { headers: { a: 1 }, body: "" } },
      "invalid event: callerIdentity.headers: header values must be strings of at most 8192 characters",
    ],
    [
      { connectionId: "acme", callerIdentity: { headers: { ["h".repeat(65)]: "v" }, body: "" } },
      "invalid event: callerIdentity.headers: header names must be 1-64 characters",
    ],
    [
      { connectionId: "acme", callerIdentity: { headers: {}, body: "b".repeat(257) } },
      "invalid event: callerIdentity.body: must be a string of at most 256 characters",
    ],
  ])("refuses %j with a message naming the field", (event, message) => {
    expect(refusal(schema, event)).toBe(message);
  });

  it("names every problem of an event, not only the first", () => {
    const message = refusal(schema, { minValiditySeconds: -1, rejectedGeneration: 0, extra: true });

    expect(message).toBe(
      'invalid event: event: unknown field "extra"; connectionId: is required; ' +
        "minValiditySeconds: must be an integer from 0 to 30; rejectedGeneration: must be an integer from 1",
    );
  });

  it("never quotes a header value (it holds the caller's session token)", () => {
    const token = "IQoJb3JpZ2luX2VjE-session-token";
    const headers = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`h${i}`, token]));

    const message = refusal(schema, { connectionId: "acme", callerIdentity: { headers, body: "" } });

    expect(message).toBe("invalid event: callerIdentity.headers: at most 16 headers");
    expect(message).not.toContain(token);
  });
});

describe("scheduledEventSchema", () => {
  it("passes EventBridge's scheduled event with all its fields", () => {
    const event = {
      "detail-type": "Scheduled Event",
      source: "aws.events",
      time: "2026-01-01T00:00:00Z",
      detail: {},
    };

    expect(parse(scheduledEventSchema, event)).toBe(event);
  });

  it("refuses anything else", () => {
    expect(refusal(scheduledEventSchema, { connectionId: "acme" })).toBe(
      'invalid event: detail-type: must be "Scheduled Event"; source: must be "aws.events"',
    );
  });
});

describe("healEventSchema", () => {
  it.each([[{ connectionId: "acme" }], [{ connectionId: "acme", operator: true }]])("passes %j", (event) => {
    expect(parse(healEventSchema, event)).toBe(event);
  });

  it.each([
    [{ connectionId: "acme", operator: "yes" }, "invalid event: operator: must be true or false"],
    [
      { connectionId: "acme", minValiditySeconds: 1 },
      'invalid event: event: unknown field "minValiditySeconds"',
    ],
  ])("refuses %j", (event, message) => {
    expect(refusal(healEventSchema, event)).toBe(message);
  });
});
