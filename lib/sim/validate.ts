import { ValidationError } from "../errors.js";

/**
 * Small readers for JSON bodies and config files. Every control-API body, the config file and
 * the programmatic options pass through them, so a typo (`"advanceSecond"`) or a wrong type is
 * a 400 with a message instead of a silently ignored field.
 */
export type JsonObject = Record<string, unknown>;

export function asObject(value: unknown, what: string): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ValidationError(`${what} must be a JSON object`);
  }
  return value as JsonObject;
}

export function rejectUnknownKeys(object: JsonObject, allowed: readonly string[], what: string): void {
  const unknown = Object.keys(object).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) {
    throw new ValidationError(`${what}: unknown field(s) ${unknown.map((key) => `"${key}"`).join(", ")}`);
  }
}

export function requiredString(object: JsonObject, key: string, what: string): string {
  const value = object[key];
  if (typeof value !== "string" || value.length === 0) {
    throw new ValidationError(`${what}: "${key}" must be a non-empty string`);
  }
  return value;
}

export function optionalString(object: JsonObject, key: string, what: string): string | undefined {
  return object[key] === undefined ? undefined : requiredString(object, key, what);
}

export function optionalBoolean(object: JsonObject, key: string, what: string): boolean | undefined {
  const value = object[key];
  if (value !== undefined && typeof value !== "boolean") {
    throw new ValidationError(`${what}: "${key}" must be true or false`);
  }
  return value;
}

export interface NumberRange {
  min: number;
  max: number;
  integer?: boolean;
}

export function checkNumber(value: unknown, range: NumberRange, label: string): number {
  const kind = range.integer ? "an integer" : "a number";
  if (
    typeof value !== "number" ||
    !Number.isFinite(value) ||
    (range.integer && !Number.isInteger(value)) ||
    value < range.min ||
    value > range.max
  ) {
    throw new ValidationError(`${label} must be ${kind} from ${range.min} to ${range.max}`);
  }
  return value;
}

export function optionalNumber(
  object: JsonObject,
  key: string,
  range: NumberRange,
  what: string,
): number | undefined {
  const value = object[key];
  return value === undefined ? undefined : checkNumber(value, range, `${what}: "${key}"`);
}

export function requiredNumber(object: JsonObject, key: string, range: NumberRange, what: string): number {
  if (object[key] === undefined) {
    throw new ValidationError(`${what}: "${key}" is required`);
  }
  return checkNumber(object[key], range, `${what}: "${key}"`);
}
