import { createHash } from "node:crypto";
import { parseXML } from "@aws-sdk/xml-builder";
import { AccessDenied, StsUnavailable } from "../errors.js";
import { type CallerIdentity, SIGNATURE_WINDOW_MS, stsEndpointFor } from "./caller-identity.js";
import { type CheckedIdentityRequest, checkIdentityRequest } from "./identity-request-checks.js";
import { callerPrincipalOf } from "./principal.js";

/** Who STS said signed the request. */
export interface VerifiedCaller {
  /** The ARN STS answered (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`, `arn:aws:iam::ACCOUNT:user/NAME`). */
  readonly arn: string;
  /** What grants are matched against (principal.ts): an assumed role's session becomes its role's ARN, without path. */
  readonly principal: string;
}

export interface StsIdentityVerifierOptions {
  /** This broker's BROKER_SERVER_ID: the value the signed server-ID header must carry. */
  readonly serverId: string;
  /** token-vend's own region (AWS_REGION): consumers sign for STS there. */
  readonly region: string;
  /**
   * Where STS is. Tests point it at moto_server; it never comes from an event.
   * @default the regional endpoint, https://sts.<region>.amazonaws.com (stsEndpointFor)
   */
  readonly endpoint?: string;
  /** @default globalThis.fetch (keep-alive: a warm container reuses its TLS connection to STS) */
  readonly fetch?: typeof fetch;
  /** Epoch ms. @default Date.now */
  readonly now?: () => number;
}

/** STS answers GetCallerIdentity in about 20–50 ms in-region; 5 s means it is not answering. */
export const STS_TIMEOUT_MS = 5_000;
/** Verified identities kept per container: one per consumer container signature, re-signed every 5 minutes. */
const MAX_CACHED_IDENTITIES = 1_000;
/** STS's error codes that mean "try again" rather than "not this caller". */
const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
]);
const ERROR_CODE = /^[A-Za-z.]{1,64}$/;

interface CachedCaller {
  readonly caller: VerifiedCaller;
  /** The signature's own end: X-Amz-Date + 15 minutes. */
  readonly untilMs: number;
}

type Xml = Record<string, unknown>;

function child(node: unknown, name: string): unknown {
  return typeof node === "object" && node !== null ? (node as Xml)[name] : undefined;
}

/**
 * Verifies a consumer's signed `sts:GetCallerIdentity` request (Vault's AWS IAM auth method):
 * checks it itself (identity-request-checks.ts), sends it to STS at the regional endpoint it
 * builds itself (never a URL from the event: `callerIdentity` carries no URL, and its Host must
 * name this endpoint) and reads the caller's ARN from STS's answer.
 *
 * A verified identity is cached under a hash of the signed request until the signature's 15
 * minutes run out, so a warm container verifies each consumer signature once: the client library
 * re-signs every 5 minutes. Refusals are not cached.
 */
export class StsIdentityVerifier {
  readonly #serverId: string;
  readonly #region: string;
  readonly #endpoint: URL;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #cache = new Map<string, CachedCaller>();

  constructor(options: StsIdentityVerifierOptions) {
    this.#serverId = options.serverId;
    this.#region = options.region;
    this.#endpoint = new URL(options.endpoint ?? stsEndpointFor(options.region));
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#now = options.now ?? Date.now;
  }

  /** The host consumers must sign for (`sts.eu-west-1.amazonaws.com`). */
  get host(): string {
    return this.#endpoint.host;
  }

  /**
   * @param deadlineMs epoch ms by which the STS call must be over (the invocation's deadline)
   * @throws AccessDenied when a check fails or STS refuses the signature (expired credentials,
   *   a wrong signature, an unknown key); StsUnavailable when STS fails, throttles or does not answer
   */
  async verify(identity: CallerIdentity, deadlineMs?: number): Promise<VerifiedCaller> {
    const nowMs = this.#now();
    const request = checkIdentityRequest(identity, {
      serverId: this.#serverId,
      region: this.#region,
      host: this.host,
      nowMs,
    });
    const key = cacheKey(request);
    const cached = this.#cache.get(key);
    if (cached && nowMs <= cached.untilMs) return cached.caller;
    if (cached) this.#cache.delete(key);

    const caller = await this.#ask(request, deadlineMs === undefined ? STS_TIMEOUT_MS : deadlineMs - nowMs);
    if (this.#cache.size >= MAX_CACHED_IDENTITIES) {
      // Map keeps insertion order: the oldest signature goes first.
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(key, { caller, untilMs: request.signedAtMs + SIGNATURE_WINDOW_MS });
    return caller;
  }

  async #ask(request: CheckedIdentityRequest, leftMs: number): Promise<VerifiedCaller> {
    const timeoutMs = Math.min(STS_TIMEOUT_MS, leftMs);
    if (timeoutMs <= 0)
      throw new StsUnavailable("no time left to verify the caller with STS", { retryAfterSeconds: 1 });
    // Host is the URL's (checked equal above); fetch sets it and Content-Length itself.
    const { host: _host, ...headers } = request.headers;
    let status: number;
    let text: string;
    try {
      const response = await this.#fetch(new URL("/", this.#endpoint), {
        method: "POST",
        headers,
        body: request.body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      throw new StsUnavailable(`STS did not answer within ${timeoutMs} ms or the connection failed`, {
        cause: error,
        retryAfterSeconds: 1,
      });
    }
    if (status === 200) return this.#callerFrom(text);
    const code = errorCodeOf(text);
    if (status >= 500 || status === 429 || TRANSIENT_CODES.has(code)) {
      throw new StsUnavailable(`STS answered ${status} (${code}) while verifying the caller`, {
        retryAfterSeconds: 1,
      });
    }
    throw new AccessDenied(
      `STS refused the caller's signed identity (${status} ${code}): sign again with valid credentials`,
    );
  }

  #callerFrom(text: string): VerifiedCaller {
    let arn: unknown;
    try {
      const result = child(child(parseXML(text), "GetCallerIdentityResponse"), "GetCallerIdentityResult");
      arn = child(result, "Arn");
    } catch {
      arn = undefined;
    }
    if (typeof arn !== "string" || !arn.startsWith("arn:")) {
      throw new StsUnavailable("STS answered GetCallerIdentity without a caller ARN", {
        retryAfterSeconds: 1,
      });
    }
    return { arn, principal: callerPrincipalOf(arn) };
  }
}

/** The same signed request (headers and body) always has the same key; any other has another. */
function cacheKey(request: CheckedIdentityRequest): string {
  const headers = Object.entries(request.headers).sort(([a], [b]) => (a < b ? -1 : 1));
  return createHash("sha256")
    .update(JSON.stringify([headers, request.body]))
    .digest("hex");
}

/** STS's `<ErrorResponse><Error><Code>…`; a fixed word otherwise (the body never reaches a message). */
function errorCodeOf(text: string): string {
  try {
    const errorResponse = child(parseXML(text), "ErrorResponse");
    // STS nests Error directly; moto (and older APIs) add an Errors wrapper.
    const error = child(errorResponse, "Error") ?? child(child(errorResponse, "Errors"), "Error");
    const code = child(error, "Code");
    return typeof code === "string" && ERROR_CODE.test(code) ? code : "unknown";
  } catch {
    return "unknown";
  }
}
