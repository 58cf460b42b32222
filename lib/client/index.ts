/**
 * exact-token-broker/client: access tokens from token-vend for consumer Lambdas, and calls to
 * Exact's REST API with them.
 *
 *   import { exactFetch, exactPages, getAccessToken, invalidate } from "exact-token-broker/client";
 *
 * The package's only barrel. It loads the AWS SDK Lambda client, the SDK's SigV4 signer and
 * credential chain (to sign the caller's identity), and nothing of the broker's engine, crypto or
 * logging.
 */

export type { CallerIdentity } from "../auth/caller-identity.js";
export {
  AccessDenied,
  BrokerError,
  ChainBusy,
  ConfigurationError,
  ConnectionNotFound,
  ExactUnavailable,
  ReauthRequired,
  Throttled,
  UserBlocked,
  ValidationError,
} from "../errors.js";
export { DEFAULT_DEADLINE_MS } from "./deadline.js";
export { exactFetch, exactPages, getAccessToken, invalidate } from "./default-client.js";
export {
  DeadlineExceeded,
  InternalError,
  InvalidVendAnswer,
  TokenVendInvokeError,
  UnknownBrokerError,
} from "./errors.js";
export {
  ExactApiError,
  ExactBadRequest,
  ExactForbidden,
  ExactNotFound,
  ExactServerError,
  ExactUnauthorized,
  NoDivision,
} from "./exact-errors.js";
export type { ExactFetchInit, ExactPagesOptions } from "./exact-fetch.js";
export {
  type AwsCredentials,
  type AwsCredentialsProvider,
  IdentitySigner,
  type IdentitySignerOptions,
  RESIGN_AFTER_MS,
} from "./identity-signer.js";
export type { RateBudget, RateKey, RateLimitObservation } from "./rate-budget.js";
export {
  type AccessToken,
  CACHE_SAFETY_MARGIN_SECONDS,
  DEFAULT_MIN_VALIDITY_SECONDS,
  type GetAccessTokenOptions,
  type InvalidateOptions,
  TokenClient,
  type TokenClientOptions,
} from "./token-client.js";
