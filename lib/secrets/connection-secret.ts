import * as z from "zod";
import { SecretUnavailable } from "../errors.js";
import { registerSecret } from "../log/redactor.js";

/**
 * What an operator gives `exact-broker connection add` (`--secret-file` JSON, or the prompts),
 * and what one secret held before the split (the combined layout, secret-layout.ts): the OAuth
 * client secret and, for the fallback login (design: a broken chain heals itself), the Exact
 * user's name, password and TOTP secret.
 */
export interface ConnectionSecret {
  clientSecret: string;
  username?: string;
  password?: string;
  totpSecret?: string;
}

/** What a login needs, all three present and non-empty: the login secret's whole value. */
export interface LoginCredentials {
  readonly username: string;
  readonly password: string;
  readonly totpSecret: string;
}

const connectionSecretSchema = z.object({
  clientSecret: z.string().min(1),
  username: z.string().optional(),
  password: z.string().optional(),
  totpSecret: z.string().optional(),
});

const loginCredentialsSchema = z.object({
  username: z.string().min(1),
  password: z.string().min(1),
  totpSecret: z.string().min(1),
});

const FIELD_RULES: Record<string, string> = {
  clientSecret: "must be a non-empty string",
  username: "must be a string when present",
  password: "must be a string when present",
  totpSecret: "must be a string when present",
};

const LOGIN_FIELD_RULES: Record<string, string> = {
  username: "must be a non-empty string",
  password: "must be a non-empty string",
  totpSecret: "must be a non-empty string",
};

/**
 * The login credentials a secret holds, when it holds all three non-empty (an empty password can
 * only fail, and failed logins count against Exact's error budget); undefined otherwise.
 */
export function loginCredentialsOf(secret: ConnectionSecret): LoginCredentials | undefined {
  const { username, password, totpSecret } = secret;
  return username && password && totpSecret ? { username, password, totpSecret } : undefined;
}

/**
 * Checks a client secret's value (either layout: `{clientSecret}` alone, or combined with the
 * login fields) and registers its secret fields with the log redactor, so they can never show
 * up in a log line afterwards.
 *
 * @throws SecretUnavailable naming the secret ID and the offending field, never a value.
 */
export function toConnectionSecret(value: unknown, secretId: string): ConnectionSecret {
  const secret: ConnectionSecret = checked(connectionSecretSchema, FIELD_RULES, value, secretId);
  registerSecret(secret.clientSecret);
  if (secret.password) registerSecret(secret.password);
  if (secret.totpSecret) registerSecret(secret.totpSecret);
  return secret;
}

/**
 * Checks a login secret's value: user name, password and TOTP secret, each a non-empty string
 * (a login secret exists only to log in with). Registers the password and TOTP secret with the
 * log redactor.
 *
 * @throws SecretUnavailable naming the secret ID and the offending field, never a value.
 */
export function toLoginCredentials(value: unknown, secretId: string): LoginCredentials {
  const login = checked(loginCredentialsSchema, LOGIN_FIELD_RULES, value, secretId);
  registerSecret(login.password);
  registerSecret(login.totpSecret);
  return login;
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

function checked<T>(
  schema: z.ZodType<T>,
  rules: Record<string, string>,
  value: unknown,
  secretId: string,
): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  // Built from paths only: zod's own messages are safe today, but a future `reportInput` or
  // custom message must not be able to put a password into an error.
  const problems = parsed.error.issues.map((issue) => {
    const field = issue.path[0];
    if (typeof field !== "string") return "the value must be a JSON object";
    return `${field} ${rules[field] ?? "is invalid"}`;
  });
  throw new SecretUnavailable(`Secret ${secretId} does not have the expected shape: ${problems.join("; ")}`);
}
