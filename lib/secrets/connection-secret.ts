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

/** A field's rule, and the message that names it (never its value). */
interface FieldRule {
  readonly required: boolean;
  readonly message: string;
}

const NON_EMPTY: FieldRule = { required: true, message: "must be a non-empty string" };
const OPTIONAL: FieldRule = { required: false, message: "must be a string when present" };

const CONNECTION_SECRET_FIELDS: Readonly<Record<keyof ConnectionSecret, FieldRule>> = {
  clientSecret: NON_EMPTY,
  username: OPTIONAL,
  password: OPTIONAL,
  totpSecret: OPTIONAL,
};

const LOGIN_FIELDS: Readonly<Record<keyof LoginCredentials, FieldRule>> = {
  username: NON_EMPTY,
  password: NON_EMPTY,
  totpSecret: NON_EMPTY,
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
  const secret: ConnectionSecret = checked(CONNECTION_SECRET_FIELDS, value, secretId);
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
  const login: LoginCredentials = checked(LOGIN_FIELDS, value, secretId);
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

/**
 * The secret's known fields, each checked against its rule; other fields are dropped. Messages
 * are built from field names only, so no part of a value can reach an error.
 */
function checked<T>(
  fields: Readonly<Record<keyof T & string, FieldRule>>,
  value: unknown,
  secretId: string,
): T {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SecretUnavailable(
      `Secret ${secretId} does not have the expected shape: the value must be a JSON object`,
    );
  }
  const source = value as Readonly<Record<string, unknown>>;
  const result: Record<string, string> = {};
  const problems: string[] = [];
  for (const [field, rule] of Object.entries<FieldRule>(fields)) {
    const fieldValue = Object.hasOwn(source, field) ? source[field] : undefined;
    if (fieldValue === undefined && !rule.required) continue;
    if (typeof fieldValue !== "string" || (rule.required && fieldValue === "")) {
      problems.push(`${field} ${rule.message}`);
    } else result[field] = fieldValue;
  }
  if (problems.length > 0) {
    throw new SecretUnavailable(
      `Secret ${secretId} does not have the expected shape: ${problems.join("; ")}`,
    );
  }
  return result as T;
}
