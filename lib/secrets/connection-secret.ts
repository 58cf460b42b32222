import * as z from "zod";
import { SecretUnavailable } from "../errors.js";
import { registerSecret } from "../log/redactor.js";

/**
 * What a connection's secret holds: the OAuth client secret, and for the fallback login
 * (design: a broken chain heals itself) the Exact user's name, password and TOTP secret.
 */
export interface ConnectionSecret {
  clientSecret: string;
  username?: string;
  password?: string;
  totpSecret?: string;
}

const connectionSecretSchema = z.object({
  clientSecret: z.string().min(1),
  username: z.string().optional(),
  password: z.string().optional(),
  totpSecret: z.string().optional(),
});

const FIELD_RULES: Record<string, string> = {
  clientSecret: "must be a non-empty string",
  username: "must be a string when present",
  password: "must be a string when present",
  totpSecret: "must be a string when present",
};

/**
 * True when the secret allows the fallback login: user name, password and TOTP secret are all
 * present and non-empty (an empty password can only fail, and failed logins count against
 * Exact's error budget).
 */
export function hasLoginCredentials(secret: ConnectionSecret): secret is Required<ConnectionSecret> {
  return Boolean(secret.username && secret.password && secret.totpSecret);
}

/**
 * Checks a parsed secret value against the documented shape and registers its secret fields
 * with the log redactor, so they can never show up in a log line afterwards.
 *
 * @throws SecretUnavailable naming the secret ID and the offending field, never a value.
 */
export function toConnectionSecret(value: unknown, secretId: string): ConnectionSecret {
  const parsed = connectionSecretSchema.safeParse(value);
  if (!parsed.success) {
    // Built from paths only: zod's own messages are safe today, but a future `reportInput`
    // or custom message must not be able to put a password into an error.
    const problems = parsed.error.issues.map((issue) => {
      const field = issue.path[0];
      if (typeof field !== "string") return "the value must be a JSON object";
      return `${field} ${FIELD_RULES[field] ?? "is invalid"}`;
    });
    throw new SecretUnavailable(
      `Secret ${secretId} does not have the expected shape: ${problems.join("; ")}`,
    );
  }
  const secret: ConnectionSecret = parsed.data;
  registerSecret(secret.clientSecret);
  if (secret.password !== undefined) registerSecret(secret.password);
  if (secret.totpSecret !== undefined) registerSecret(secret.totpSecret);
  return secret;
}

/**
 * Parses a secret's JSON text. The JSON parser's own error quotes the input, so it is dropped,
 * not attached as a cause.
 *
 * @throws SecretUnavailable when the text is not JSON, naming the secret ID only.
 */
export function parseSecretJson(text: string, secretId: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new SecretUnavailable(`Secret ${secretId} is not valid JSON`);
  }
}
