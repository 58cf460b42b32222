/**
 * The Lambda events' checks, written by hand instead of with zod: the events have two to four
 * fields, and zod was about 90 KB of each bundle and a good part of token-vend's cold start
 * (issue 12). Each check is a Standard Schema (https://standardschema.dev, version 1), which is
 * what Powertools' parser middleware takes. A refused event therefore still throws the parser's
 * ParseError, and the error boundary turns it into a ValidationError.
 */

/** One thing wrong with an event: the field (a dotted path, `event` for the whole) and what is wrong. */
export interface EventIssue {
  readonly message: string;
  readonly path: readonly string[];
}

/** Standard Schema v1: the part of its interface that the parser middleware uses. */
export interface EventSchema<T> {
  readonly "~standard": {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => { readonly value: T } | { readonly issues: readonly EventIssue[] };
    /** Used only by Standard Schema's type inference; never set at run time. */
    readonly types?: { readonly input: unknown; readonly output: T } | undefined;
  };
}

/** Records an issue: `field` is a dotted path such as `callerIdentity.headers`, or `event`. */
export type Report = (field: string, message: string) => void;

/**
 * A schema from a check that reports every issue it finds. An event with no issues is passed on
 * unchanged, so a check must refuse every field it does not know (the events are strict, with
 * one exception: the scheduled event).
 */
export function eventSchema<T>(check: (event: unknown, report: Report) => void): EventSchema<T> {
  return {
    "~standard": {
      version: 1,
      vendor: "exact-token-broker",
      validate(value) {
        const issues: EventIssue[] = [];
        check(value, (field, message) => issues.push({ path: field.split("."), message }));
        return issues.length > 0 ? { issues } : { value: value as T };
      },
    },
  };
}

/** A JSON object: not null, not an array. */
export function isObject(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Longest part of a field name quoted in a message: the name comes from the caller. */
const QUOTED_NAME_CHARS = 64;

/** Reports each of `object`'s fields that is not in `known` (the name is quoted, cut at 64 characters). */
export function refuseUnknownFields(
  object: Readonly<Record<string, unknown>>,
  known: ReadonlySet<string>,
  where: string,
  report: Report,
): void {
  for (const key of Object.keys(object)) {
    if (!known.has(key)) report(where, `unknown field ${JSON.stringify(key.slice(0, QUOTED_NAME_CHARS))}`);
  }
}

/** An integer from `min` to `max`, both included. */
export function isIntegerIn(value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max;
}

/** A string of `min` to `max` characters (UTF-16 code units, as `length` counts them). */
export function isStringOf(value: unknown, min: number, max: number): value is string {
  return typeof value === "string" && value.length >= min && value.length <= max;
}
