import { ValidationError } from "../errors.js";
import {
  asObject,
  checkNumber,
  optionalNumber,
  optionalString,
  rejectUnknownKeys,
  requiredNumber,
  requiredString,
} from "./validate.js";

/** An OAuth app registered with Exact (the simulator's counterpart of Exact's app centre). */
export interface AppSpec {
  clientId: string;
  clientSecret: string;
  /** Exact compares redirect URIs exactly; so does the simulator. */
  redirectUris: string[];
}

/** An Exact user; password and TOTP secret are what the login pages check. */
export interface UserSpec {
  username: string;
  password: string;
  /** Base32, as an authenticator app shows it. */
  totpSecret: string;
  /** A GUID like Exact's `UserID`; generated when absent. */
  userId?: string;
  /** `CurrentDivision` in `/current/Me`; one of `divisions`. @default the first of `divisions`, else 123456 */
  division?: number;
  /** The divisions the user can open through the REST API. @default [division] */
  divisions?: number[];
  /** @default the username */
  fullName?: string;
  /** @default the username when it holds an `@`, else `<username>@example.com` */
  email?: string;
}

/** Apps and users created at start (`config` option, `--config FILE`). */
export interface SimulatorConfig {
  apps?: AppSpec[];
  users?: UserSpec[];
}

/** The operator shortcut for the login and consent pages: who authorizes which app. */
export interface AuthorizeRequest {
  clientId: string;
  username: string;
  redirectUri: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BASE32 = /^[A-Z2-7]+=*$/i;
/** Exact's division numbers are Edm.Int32. */
const DIVISION_RANGE = { min: 1, max: 2 ** 31 - 1, integer: true };

function parseDivisions(value: unknown, what: string): number[] | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (!Array.isArray(value) || value.length === 0 || value.length > 1000) {
    throw new ValidationError(
      `${what}: "divisions" must be a non-empty array of at most 1000 division numbers`,
    );
  }
  const divisions = value.map((division, index) =>
    checkNumber(division, DIVISION_RANGE, `${what}: "divisions"[${index}]`),
  );
  if (new Set(divisions).size !== divisions.length) {
    throw new ValidationError(`${what}: "divisions" lists a division twice`);
  }
  return divisions;
}

export function parseAppSpec(value: unknown): AppSpec {
  const what = "app";
  const object = asObject(value, what);
  rejectUnknownKeys(object, ["clientId", "clientSecret", "redirectUris"], what);
  const redirectUris = object.redirectUris;
  if (!Array.isArray(redirectUris) || redirectUris.length === 0) {
    throw new ValidationError(`${what}: "redirectUris" must be a non-empty array of absolute URLs`);
  }
  for (const uri of redirectUris) {
    if (typeof uri !== "string" || !URL.canParse(uri)) {
      throw new ValidationError(`${what}: "redirectUris" must be a non-empty array of absolute URLs`);
    }
  }
  return {
    clientId: requiredString(object, "clientId", what),
    clientSecret: requiredString(object, "clientSecret", what),
    redirectUris: [...redirectUris],
  };
}

export function parseUserSpec(value: unknown): UserSpec {
  const what = "user";
  const object = asObject(value, what);
  rejectUnknownKeys(
    object,
    ["username", "password", "totpSecret", "userId", "division", "divisions", "fullName", "email"],
    what,
  );
  const totpSecret = requiredString(object, "totpSecret", what);
  if (!BASE32.test(totpSecret)) {
    throw new ValidationError(`${what}: "totpSecret" must be base32 (A-Z, 2-7)`);
  }
  const userId = optionalString(object, "userId", what);
  if (userId !== undefined && !GUID.test(userId)) {
    throw new ValidationError(`${what}: "userId" must be a GUID`);
  }
  const division = optionalNumber(object, "division", DIVISION_RANGE, what);
  const divisions = parseDivisions(object.divisions, what);
  if (division !== undefined && divisions !== undefined && !divisions.includes(division)) {
    throw new ValidationError(`${what}: "divisions" must include "division"`);
  }
  return {
    username: requiredString(object, "username", what),
    password: requiredString(object, "password", what),
    totpSecret,
    userId,
    division,
    divisions,
    fullName: optionalString(object, "fullName", what),
    email: optionalString(object, "email", what),
  };
}

/** `POST /_sim/users/{username}/divisions`: a new `CurrentDivision`, new accessible divisions, or both. */
export interface UserDivisionsSpec {
  division?: number;
  divisions?: number[];
}

export function parseUserDivisionsSpec(value: unknown): UserDivisionsSpec {
  const what = "user divisions";
  const object = asObject(value, what);
  rejectUnknownKeys(object, ["division", "divisions"], what);
  const division = optionalNumber(object, "division", DIVISION_RANGE, what);
  const divisions = parseDivisions(object.divisions, what);
  if (division === undefined && divisions === undefined) {
    throw new ValidationError(`${what}: give "division", "divisions" or both`);
  }
  if (division !== undefined && divisions !== undefined && !divisions.includes(division)) {
    throw new ValidationError(`${what}: "divisions" must include "division"`);
  }
  return {
    ...(division !== undefined ? { division } : {}),
    ...(divisions !== undefined ? { divisions } : {}),
  };
}

/**
 * `POST /_sim/refresh-token-age`: how old the live refresh token of the pair (client ID, user)
 * is, in seconds of sim time. Exact expires a refresh token 30 days after it issued it; a bench
 * that stands for a chain left idle for days (bench/scale.ts) sets the age instead of waiting.
 */
export interface RefreshTokenAgeSpec {
  clientId: string;
  username: string;
  ageSeconds: number;
}

/** Ten years: any age a test may want, an expired token's included. */
const MAX_REFRESH_TOKEN_AGE_SECONDS = 10 * 365 * 24 * 3600;

export function parseRefreshTokenAgeSpec(value: unknown): RefreshTokenAgeSpec {
  const what = "refresh token age";
  const object = asObject(value, what);
  rejectUnknownKeys(object, ["clientId", "username", "ageSeconds"], what);
  return {
    clientId: requiredString(object, "clientId", what),
    username: requiredString(object, "username", what),
    ageSeconds: requiredNumber(object, "ageSeconds", { min: 0, max: MAX_REFRESH_TOKEN_AGE_SECONDS }, what),
  };
}

export function parseAuthorizeRequest(value: unknown): AuthorizeRequest {
  const what = "authorize";
  const object = asObject(value, what);
  rejectUnknownKeys(object, ["clientId", "username", "redirectUri"], what);
  return {
    clientId: requiredString(object, "clientId", what),
    username: requiredString(object, "username", what),
    redirectUri: requiredString(object, "redirectUri", what),
  };
}

export function parseSimulatorConfig(value: unknown): SimulatorConfig {
  const what = "config";
  const object = asObject(value, what);
  rejectUnknownKeys(object, ["apps", "users"], what);
  const list = (key: "apps" | "users"): unknown[] => {
    const items = object[key] ?? [];
    if (!Array.isArray(items)) {
      throw new ValidationError(`${what}: "${key}" must be an array`);
    }
    return items;
  };
  return { apps: list("apps").map(parseAppSpec), users: list("users").map(parseUserSpec) };
}
