/**
 * The signed `sts:GetCallerIdentity` request a consumer sends in token-vend's event
 * (`callerIdentity`), shared by the client that signs it (lib/client/) and the broker that checks
 * and forwards it (lib/auth/). The mechanism is HashiCorp Vault's AWS IAM auth method
 * (https://developer.hashicorp.com/vault/docs/auth/aws, "IAM auth method": iam_request_headers,
 * iam_request_body, the X-Vault-AWS-IAM-Server-ID header). No imports: consumer bundles load it.
 */

/** What a consumer sends: the signed request's headers and body, never its URL or method. */
export interface CallerIdentity {
  /** The signed request's headers, names in any case (values as signed). */
  readonly headers: Readonly<Record<string, string>>;
  /** Always {@link GET_CALLER_IDENTITY_BODY}. */
  readonly body: string;
}

/**
 * Names the broker a request was signed for, so a signed request captured by one broker (or a
 * Vault) cannot be replayed at another: the broker requires it among the SignedHeaders, with its
 * own `BROKER_SERVER_ID` as the value (Vault's `iam_server_id_header_value`, same purpose).
 */
export const SERVER_ID_HEADER = "X-Exact-Broker-Server-ID";

/** The only request the broker forwards: STS's query API, GetCallerIdentity, API version 2011-06-15. */
export const GET_CALLER_IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15";

/** The body's content type, as the AWS SDKs send query-API requests. */
export const FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8";

/**
 * STS accepts a signature dated up to 15 minutes either side of its clock (its answer past that:
 * InvalidSignatureException "Signature expired: … (… - 15 min.)" or "Signature not yet current:
 * … (… + 15 min.)"); the broker applies the same window itself, and caches a verified identity
 * no longer than that.
 */
export const SIGNATURE_WINDOW_MS = 15 * 60 * 1000;

/**
 * STS's regional endpoint for `region` (AWS's endpoint table: `sts.<region>.amazonaws.com`, and
 * `amazonaws.com.cn` in the China regions). The broker verifies at its own region's endpoint, so
 * consumers sign for that region.
 */
export function stsEndpointFor(region: string): string {
  const suffix = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  return `https://sts.${region}.${suffix}`;
}

/** An AWS region name (`eu-west-1`, `us-gov-west-1`, `cn-north-1`): it becomes part of a host name. */
export const REGION_PATTERN = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;
