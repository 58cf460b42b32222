import type { App } from "aws-cdk-lib";

/**
 * Settings the bundled app reads from `cdk synth -c NAME=VALUE` (or cdk.json's context). Context
 * values arrive as strings from the command line and as JSON values from cdk.json; both are
 * checked here, because a typo that synthesizes deploys functions that refuse to start.
 */

/**
 * A `true`/`false` setting (the boolean, or the string `-c` gives).
 *
 * @returns undefined when the setting is absent
 * @throws Error (at synth) for any other value, naming the setting and what it accepts
 */
export function contextFlag(app: App, name: string): boolean | undefined {
  const value: unknown = app.node.tryGetContext(name);
  if (value === undefined) return undefined;
  if (value === true || value === "true") return true;
  if (value === false || value === "false") return false;
  throw new Error(`-c ${name} must be true or false, got ${JSON.stringify(value)}`);
}

/**
 * A setting with a fixed set of values, matched exactly (case-sensitive, as the functions read it).
 *
 * @returns undefined when the setting is absent
 * @throws Error (at synth) for any other value, naming the setting and the values it accepts
 */
export function contextChoice<T extends string>(
  app: App,
  name: string,
  choices: readonly T[],
): T | undefined {
  const value: unknown = app.node.tryGetContext(name);
  if (value === undefined) return undefined;
  if (typeof value === "string" && (choices as readonly string[]).includes(value)) return value as T;
  throw new Error(`-c ${name} must be one of ${choices.join(", ")}, got ${JSON.stringify(value)}`);
}

/**
 * A free-text setting.
 *
 * @returns undefined when absent or empty
 * @throws Error (at synth) for a value that is not a string
 */
export function contextString(app: App, name: string): string | undefined {
  const value: unknown = app.node.tryGetContext(name);
  if (value === undefined || value === "") return undefined;
  if (typeof value === "string") return value;
  throw new Error(`-c ${name} must be a string, got ${JSON.stringify(value)}`);
}
