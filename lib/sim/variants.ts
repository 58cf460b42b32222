import { asObject, optionalBoolean, rejectUnknownKeys } from "./validate.js";

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
}

export const DEFAULT_VARIANTS: Readonly<Variants> = {
  oldTokenAs400Obsoleted: false,
  tooEarlyAs401: false,
  tooEarlyCarriesRefreshToken: false,
  supersededAsInvalidGrant: false,
  oldAccessTokenValidAfterRefresh: true,
};

const VARIANT_NAMES = Object.keys(DEFAULT_VARIANTS) as (keyof Variants)[];

/** Reads a partial `Variants` object; unknown names are refused so a typo cannot pass silently. */
export function parseVariants(value: unknown): Partial<Variants> {
  const what = "variants";
  const object = asObject(value, what);
  rejectUnknownKeys(object, VARIANT_NAMES, what);
  const partial: Partial<Variants> = {};
  for (const name of VARIANT_NAMES) {
    const flag = optionalBoolean(object, name, what);
    if (flag !== undefined) {
      partial[name] = flag;
    }
  }
  return partial;
}
