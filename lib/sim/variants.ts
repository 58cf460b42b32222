import { asObject, optionalBoolean, optionalNumber, rejectUnknownKeys } from "./validate.js";

/**
 * Switches for what the sources on Exact disagree about or report rarely (see
 * shared/exact-online.md). Every switch off is the behaviour observed most recently.
 */
export interface Variants {
  /** Old refresh token: 400 invalid_request "An obsoleted refresh token can not be used." (Invantive's wording) instead of 401 unauthorized_client. */
  oldTokenAs400Obsoleted: boolean;
  /** Too-early refresh: 401 (Exact's own text) instead of 400 (observed 2026); same body and `Reason` header. */
  tooEarlyAs401: boolean;
  /** Too-early answer also carries a new `refresh_token` and the chain rotates to it (one unverified report). */
  tooEarlyCarriesRefreshToken: boolean;
  /** Refresh token of a chain superseded by a new authorization: 400 invalid_grant "…invalid or empty chainId". */
  supersededAsInvalidGrant: boolean;
  /** An access token stays valid until it expires even after a refresh or a new authorization. */
  oldAccessTokenValidAfterRefresh: boolean;
  /**
   * Exact's announced cap (July 2021, enforcement and answer unconfirmed): past
   * `dailyTokenCapPerDay` token requests of an (app, user) in a UTC day, the rest get a 429.
   */
  dailyTokenCap: boolean;
  /** The cap's number, used only while `dailyTokenCap` is on. @default 200 */
  dailyTokenCapPerDay: number;
  /**
   * Exact revokes every access token this many seconds (sim time) after issuing it, while its
   * `expires_in` still promises the whole lifetime: `/current/Me` and the REST API refuse it (401)
   * from then on, the refresh window is unchanged. Models an access token refused before its
   * expiry for a reason the client cannot see. 0: never early. @default 0
   */
  accessTokenRevokedAfterSeconds: number;
}

export const DEFAULT_VARIANTS: Readonly<Variants> = {
  oldTokenAs400Obsoleted: false,
  tooEarlyAs401: false,
  tooEarlyCarriesRefreshToken: false,
  supersededAsInvalidGrant: false,
  oldAccessTokenValidAfterRefresh: true,
  dailyTokenCap: false,
  dailyTokenCapPerDay: 200,
  accessTokenRevokedAfterSeconds: 0,
};

type Switch = { [K in keyof Variants]: Variants[K] extends boolean ? K : never }[keyof Variants];

const SWITCH_NAMES = (Object.keys(DEFAULT_VARIANTS) as (keyof Variants)[]).filter(
  (name): name is Switch => typeof DEFAULT_VARIANTS[name] === "boolean",
);

/** Reads a partial `Variants` object; unknown names are refused so a typo cannot pass silently. */
export function parseVariants(value: unknown): Partial<Variants> {
  const what = "variants";
  const object = asObject(value, what);
  rejectUnknownKeys(object, Object.keys(DEFAULT_VARIANTS), what);
  const partial: Partial<Variants> = {};
  for (const name of SWITCH_NAMES) {
    const flag = optionalBoolean(object, name, what);
    if (flag !== undefined) {
      partial[name] = flag;
    }
  }
  const capPerDay = optionalNumber(
    object,
    "dailyTokenCapPerDay",
    { min: 1, max: 1_000_000, integer: true },
    what,
  );
  if (capPerDay !== undefined) {
    partial.dailyTokenCapPerDay = capPerDay;
  }
  const revokedAfter = optionalNumber(
    object,
    "accessTokenRevokedAfterSeconds",
    { min: 0, max: 86_400, integer: true },
    what,
  );
  if (revokedAfter !== undefined) {
    partial.accessTokenRevokedAfterSeconds = revokedAfter;
  }
  return partial;
}
