import { AccessDenied } from "../errors.js";
import {
  type CallerIdentity,
  GET_CALLER_IDENTITY_BODY,
  SERVER_ID_HEADER,
  SIGNATURE_WINDOW_MS,
} from "./caller-identity.js";

/**
 * What token-vend checks itself before it sends a consumer's signed GetCallerIdentity request to
 * STS, so that the request can only ever prove one thing: who signed it, for this broker, lately.
 * STS checks the signature; these checks decide what token-vend is willing to forward and cache.
 * Every failure is AccessDenied with a message that says what to fix (never a header's value
 * other than the date and server ID).
 */

/**
 * The headers token-vend forwards (lower case). As in Vault since 1.5.1 (its
 * `allowed_sts_header_values`), nothing else passes: a header outside the signature could change
 * what STS does with the request.
 */
const FORWARDED_HEADERS: ReadonlySet<string> = new Set([
  "authorization",
  "content-type",
  "host",
  "x-amz-content-sha256",
  "x-amz-date",
  "x-amz-security-token",
  SERVER_ID_HEADER.toLowerCase(),
]);

/** Headers that must be among the SignedHeaders: what makes the request this broker's and this moment's. */
const MUST_BE_SIGNED = ["host", "x-amz-date", SERVER_ID_HEADER.toLowerCase()] as const;

/** `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=hex` */
const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=[A-Z0-9]{16,128}\/(\d{8})\/([a-z0-9-]{1,32})\/([a-z0-9-]{1,32})\/aws4_request, ?SignedHeaders=([a-z0-9;-]{1,1024}), ?Signature=[0-9a-f]{64}$/;

/** SigV4's basic ISO 8601 timestamp: `20261126T120000Z`. */
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/**
 * A header value HTTP can carry (RFC 9110 §5.5: visible ASCII, space and tab; no CR, LF or other
 * controls). Anything else is the caller's mistake or an injection attempt, refused here rather
 * than left to fail in fetch, where it would read as STS being unreachable.
 */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

export interface IdentityRequestExpectations {
  /** This broker's BROKER_SERVER_ID. */
  readonly serverId: string;
  /** The region of the STS endpoint token-vend sends to: the credential scope must name it. */
  readonly region: string;
  /** The host token-vend sends to (`sts.eu-west-1.amazonaws.com`, or a test's `127.0.0.1:PORT`). */
  readonly host: string;
  /** Epoch ms, token-vend's clock. */
  readonly nowMs: number;
}

/** A request that passed: its headers to forward (lower-case names) and when it was signed. */
export interface CheckedIdentityRequest {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Epoch ms of `X-Amz-Date`: the request may be used (and its answer cached) until this + 15 minutes. */
  readonly signedAtMs: number;
}

/** A value from the event, quoted and cut short: a refusal names it without echoing a long string. */
function quote(value: string | undefined): string {
  if (value === undefined) return "missing";
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

function refuse(reason: string): never {
  throw new AccessDenied(`the caller's signed identity was refused: ${reason}`);
}

function parseAmzDate(value: string): number {
  const [, year, month, day, hours, minutes, seconds] = (AMZ_DATE.exec(value) ?? []).map(Number);
  const ms =
    seconds === undefined
      ? Number.NaN
      : Date.UTC(year ?? 0, (month ?? 0) - 1, day ?? 0, hours ?? 0, minutes ?? 0, seconds);
  // Date.UTC rolls 20261332 over into February: compare the round trip to catch impossible dates.
  if (!Number.isFinite(ms) || new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, "") !== value) {
    refuse("X-Amz-Date is not a SigV4 timestamp (YYYYMMDDTHHMMSSZ)");
  }
  return ms;
}

/**
 * Checks a consumer's `callerIdentity` against this broker: only the forwarded headers, a
 * GetCallerIdentity body, a SigV4 Authorization for STS in `region` dated within 15 minutes of
 * now (either way, as STS), `host`, `x-amz-date` and the server-ID header among the signed
 * headers, the server ID this broker's, the host the one token-vend sends to.
 *
 * @throws AccessDenied naming the first check that failed.
 */
export function checkIdentityRequest(
  identity: CallerIdentity,
  expected: IdentityRequestExpectations,
): CheckedIdentityRequest {
  // A Map, not an object literal: a SignedHeaders entry such as "constructor" must find nothing.
  const headers = new Map<string, string>();
  for (const [name, value] of Object.entries(identity.headers)) {
    const lower = name.toLowerCase();
    if (!FORWARDED_HEADERS.has(lower)) refuse(`header ${quote(name)} is not accepted`);
    if (headers.has(lower)) refuse(`header ${quote(name)} appears twice`);
    if (!HEADER_VALUE.test(value))
      refuse(`header ${quote(name)} has a value HTTP cannot carry (control characters)`);
    headers.set(lower, value);
  }
  if (identity.body !== GET_CALLER_IDENTITY_BODY) {
    refuse(`the body must be exactly ${JSON.stringify(GET_CALLER_IDENTITY_BODY)}`);
  }

  const authorization = AUTHORIZATION.exec(headers.get("authorization") ?? "");
  if (!authorization) refuse("no SigV4 Authorization header (AWS4-HMAC-SHA256, signed in headers)");
  const [, scopeDate, scopeRegion, scopeService, signedList = ""] = authorization;
  if (scopeService !== "sts") refuse(`signed for service "${scopeService}", not sts`);
  if (scopeRegion !== expected.region) {
    refuse(
      `signed for region ${scopeRegion}; token-vend verifies at STS in ${expected.region}: sign for that region`,
    );
  }

  const signed = new Set(signedList.split(";"));
  for (const name of MUST_BE_SIGNED) {
    if (!signed.has(name)) refuse(`header ${name} is not among the SignedHeaders`);
    if (!headers.has(name)) refuse(`signed header ${name} is missing`);
  }
  for (const name of signed) {
    if (!headers.has(name)) refuse(`signed header ${name} is missing`);
  }

  const host = headers.get("host");
  if (host !== expected.host) {
    refuse(`signed for host ${quote(host)}; token-vend verifies at ${expected.host}`);
  }
  const serverId = headers.get(SERVER_ID_HEADER.toLowerCase());
  if (serverId !== expected.serverId) {
    refuse(
      `${SERVER_ID_HEADER} is ${quote(serverId)}, not this broker's; set the consumer's TOKEN_VEND_SERVER_ID ` +
        "to the stack's BrokerServerId output",
    );
  }

  const amzDate = headers.get("x-amz-date") ?? "";
  const signedAtMs = parseAmzDate(amzDate);
  if (scopeDate !== amzDate.slice(0, 8)) refuse("the credential scope's date is not X-Amz-Date's day");
  const ageMs = expected.nowMs - signedAtMs;
  if (Math.abs(ageMs) > SIGNATURE_WINDOW_MS) {
    refuse(
      `signed at ${amzDate}, more than 15 minutes ${ageMs > 0 ? "ago" : "ahead"} of token-vend's clock: ` +
        "sign again (and check the consumer's clock)",
    );
  }
  return { headers: Object.fromEntries(headers), body: identity.body, signedAtMs };
}
