import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";

/** An UpdateItem's expression parts, with every name and value behind a placeholder. */
export interface BuiltUpdate {
  readonly UpdateExpression: string;
  readonly ConditionExpression?: string;
  readonly ExpressionAttributeNames: Record<string, string>;
  readonly ExpressionAttributeValues?: Record<string, AttributeValue>;
}

/** The parts of one UpdateItem, before placeholders are assigned. */
export interface UpdateParts {
  readonly set?: Readonly<Record<string, unknown>>;
  readonly remove?: readonly string[];
  /** Clauses that compute from the item (`#fence = #fence + :one`), placeholders listed in names/values. */
  readonly computed?: readonly string[];
  readonly condition?: string;
  readonly names?: readonly string[];
  readonly values?: Readonly<Record<string, unknown>>;
}

/**
 * Builds `SET a = :a, … REMOVE b, …` plus a condition. Condition strings refer to attributes as
 * `#name` and to values as `:name`; every `#name` used must also be listed in `names`.
 */
export function buildUpdate(parts: UpdateParts): BuiltUpdate {
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  const setClauses: string[] = [];
  for (const [attr, value] of Object.entries(parts.set ?? {})) {
    if (value === undefined) continue;
    names[`#${attr}`] = attr;
    values[`:set_${attr}`] = value;
    setClauses.push(`#${attr} = :set_${attr}`);
  }
  setClauses.push(...(parts.computed ?? []));
  const removeClauses = (parts.remove ?? []).map((attr) => {
    names[`#${attr}`] = attr;
    return `#${attr}`;
  });
  for (const attr of parts.names ?? []) names[`#${attr}`] = attr;
  for (const [key, value] of Object.entries(parts.values ?? {})) values[`:${key}`] = value;

  const expression = [
    setClauses.length > 0 ? `SET ${setClauses.join(", ")}` : "",
    removeClauses.length > 0 ? `REMOVE ${removeClauses.join(", ")}` : "",
  ]
    .filter(Boolean)
    .join(" ");
  return {
    UpdateExpression: expression,
    ...(parts.condition ? { ConditionExpression: parts.condition } : {}),
    ExpressionAttributeNames: names,
    ...(Object.keys(values).length > 0
      ? { ExpressionAttributeValues: marshall(values, { removeUndefinedValues: true }) }
      : {}),
  };
}
