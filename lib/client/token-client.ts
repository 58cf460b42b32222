import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from "@aws-sdk/client-lambda";
import { type CallerIdentity, REGION_PATTERN } from "../auth/caller-identity.js";
import type { VendAnswer } from "../chain/token-cache.js";
import { ConfigurationError, ValidationError } from "../errors.js";
import { CONNECTION_ID_PATTERN } from "../handlers/connection-id.js";
import {
  errorFromFunctionError,
  errorFromInvokeFailure,
  InvalidVendAnswer,
  TokenVendInvokeError,
} from "./errors.js";
import { type AwsCredentialsProvider, IdentitySigner } from "./identity-signer.js";

/** token-vend's answer, as handed to a consumer (frozen). */
export type AccessToken = VendAnswer;

export interface GetAccessTokenOptions {
  /**
   * Seconds the token must still be valid for; default 30. Sent to token-vend, which accepts 0 up
   * to its `REFRESH_WINDOW_SECONDS` (30 by default) and answers `ValidationError` above that.
   */
  readonly minValiditySeconds?: number;
  /** token-vend's function name or ARN; default: the client's, then env `TOKEN_VEND_FUNCTION_NAME`. */
  readonly functionName?: string;
}

export interface TokenClientOptions {
  /** Default: one `new LambdaClient({})`, created on first use (region from the environment). */
  readonly lambda?: LambdaClient;
  /** Epoch milliseconds; default `Date.now`. */
  readonly now?: () => number;
  /** Default: env `TOKEN_VEND_FUNCTION_NAME`, read at each call. */
  readonly functionName?: string;
  /**
   * The broker's server ID (its stack's `BrokerServerId` output); default env
   * `TOKEN_VEND_SERVER_ID`, read at each call. With it, every invoke carries this consumer's
   * signed AWS identity (`callerIdentity`), which a broker under `perConnection` requires; without
   * it none is sent (a `stackWide` broker serves anyway, a `perConnection` one answers AccessDenied).
   */
  readonly serverId?: string;
  /** token-vend's region, where the broker verifies identities; default: the function ARN's, then env AWS_REGION. */
  readonly region?: string;
  /** Where STS is, for tests against moto_server. @default https://sts.<region>.amazonaws.com */
  readonly stsEndpoint?: string;
  /** The credentials that sign the identity. @default the AWS SDK's default provider chain */
  readonly credentials?: AwsCredentialsProvider;
}

export const DEFAULT_MIN_VALIDITY_SECONDS = 30;

/**
 * A cached token is reused only while it has `minValiditySeconds` plus this margin left. The
 * margin covers what the cache cannot see: clock skew between this container and the broker's,
 * and the time between handing out the token and Exact receiving the request that carries it.
 * A fresh answer from token-vend is returned as it is (the broker just checked it).
 */
export const CACHE_SAFETY_MARGIN_SECONDS = 5;

const FUNCTION_NAME_ENV = "TOKEN_VEND_FUNCTION_NAME";
const SERVER_ID_ENV = "TOKEN_VEND_SERVER_ID";
/** `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` */
const FUNCTION_ARN_REGION = /^arn:[a-z-]+:lambda:([a-z0-9-]+):/;

interface Entry {
  readonly answer: AccessToken;
  readonly expiresAtMs: number;
}

interface Flight {
  readonly minValiditySeconds: number;
  readonly promise: Promise<Entry>;
}

/** Per connection and token-vend function: the cached answer and the invoke in flight. */
interface Slot {
  cached: Entry | undefined;
  flight: Flight | undefined;
}

/**
 * Gets access tokens from token-vend for a consumer Lambda: one in-memory cache per instance,
 * one invoke in flight per connection, token-vend's failures as typed errors.
 */
export class TokenClient {
  readonly #now: () => number;
  readonly #functionName: string | undefined;
  #lambda: LambdaClient | undefined;
  /** connectionId → function name → slot; `invalidate` drops a connection's whole entry. */
  readonly #slots = new Map<string, Map<string, Slot>>();
  readonly #signing: Pick<TokenClientOptions, "serverId" | "region" | "stsEndpoint" | "credentials">;
  /** One signer per (server ID, region): each keeps its signed identity for 5 minutes. */
  readonly #signers = new Map<string, IdentitySigner>();

  constructor(options: TokenClientOptions = {}) {
    this.#lambda = options.lambda;
    this.#now = options.now ?? Date.now;
    this.#functionName = options.functionName;
    this.#signing = options;
  }

  /**
   * An access token for the connection with at least `minValiditySeconds` left: from memory
   * while it has that plus `CACHE_SAFETY_MARGIN_SECONDS`, otherwise from token-vend. Concurrent
   * calls for one connection share one invoke; a caller that needs more validity than the shared
   * answer has invokes again. Throws the `BrokerError` subclass token-vend threw
   * (`retryAfterSeconds` set on retryable ones), `TokenVendInvokeError` when Lambda refused the
   * invoke, `InvalidVendAnswer`, or `ValidationError`/`ConfigurationError` before any invoke.
   */
  async getAccessToken(connectionId: string, options: GetAccessTokenOptions = {}): Promise<AccessToken> {
    const minValiditySeconds = options.minValiditySeconds ?? DEFAULT_MIN_VALIDITY_SECONDS;
    if (typeof connectionId !== "string" || !CONNECTION_ID_PATTERN.test(connectionId))
      throw new ValidationError(
        "invalid connectionId: must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
      );
    if (!Number.isInteger(minValiditySeconds) || minValiditySeconds < 0)
      throw new ValidationError("invalid minValiditySeconds: must be an integer of 0 or more");
    const functionName = options.functionName ?? this.#functionName ?? process.env[FUNCTION_NAME_ENV];
    if (!functionName)
      throw new ConfigurationError(
        `no token-vend function: set ${FUNCTION_NAME_ENV} or pass functionName (its name or ARN)`,
      );

    // Each turn either answers or waits for an invoke that ended; it ends at the latest with
    // an invoke of this caller's own.
    for (;;) {
      const slot = this.#slot(connectionId, functionName);
      if (slot.cached && this.#fresh(slot.cached, minValiditySeconds)) return slot.cached.answer;
      const flight = slot.flight;
      if (!flight) return (await this.#start(slot, functionName, connectionId, minValiditySeconds)).answer;
      const entry = await flight.promise;
      if (flight.minValiditySeconds >= minValiditySeconds || this.#fresh(entry, minValiditySeconds))
        return entry.answer;
    }
  }

  /**
   * Forgets the connection's cached token (call it when Exact answered 401), so the next
   * `getAccessToken` asks token-vend again. An invoke already in flight still answers its
   * callers, but its answer is not cached.
   */
  invalidate(connectionId: string): void {
    this.#slots.delete(connectionId);
  }

  #fresh(entry: Entry, minValiditySeconds: number): boolean {
    return entry.expiresAtMs - this.#now() >= (minValiditySeconds + CACHE_SAFETY_MARGIN_SECONDS) * 1000;
  }

  #slot(connectionId: string, functionName: string): Slot {
    let byFunction = this.#slots.get(connectionId);
    if (!byFunction) {
      byFunction = new Map();
      this.#slots.set(connectionId, byFunction);
    }
    let slot = byFunction.get(functionName);
    if (!slot) {
      slot = { cached: undefined, flight: undefined };
      byFunction.set(functionName, slot);
    }
    return slot;
  }

  #start(slot: Slot, functionName: string, connectionId: string, minValiditySeconds: number): Promise<Entry> {
    // A slot has at most one flight (callers join it while it runs). After an invalidate the
    // slot is no longer in #slots, so whatever this flight writes into it is never read.
    const promise = this.#invoke(functionName, connectionId, minValiditySeconds).then(
      (entry) => {
        slot.cached = entry;
        slot.flight = undefined;
        return entry;
      },
      (error: unknown) => {
        slot.flight = undefined;
        throw error;
      },
    );
    slot.flight = { minValiditySeconds, promise };
    return promise;
  }

  async #invoke(functionName: string, connectionId: string, minValiditySeconds: number): Promise<Entry> {
    const callerIdentity = await this.#callerIdentity(functionName);
    this.#lambda ??= new LambdaClient({});
    let output: InvokeCommandOutput;
    try {
      output = await this.#lambda.send(
        new InvokeCommand({
          FunctionName: functionName,
          InvocationType: "RequestResponse",
          Payload: JSON.stringify({
            connectionId,
            minValiditySeconds,
            ...(callerIdentity ? { callerIdentity } : {}),
          }),
        }),
      );
    } catch (error) {
      throw errorFromInvokeFailure(functionName, error);
    }
    // A real LambdaClient always answers an object; a mocked one may not.
    if (!output) throw new InvalidVendAnswer("token-vend gave no answer");
    const text = output.Payload ? new TextDecoder().decode(output.Payload) : "";
    if (output.FunctionError) throw errorFromFunctionError(output.FunctionError, text);
    return parseAnswer(text);
  }

  /** This consumer's signed identity for the broker, or undefined when no server ID is configured. */
  async #callerIdentity(functionName: string): Promise<CallerIdentity | undefined> {
    const serverId = this.#signing.serverId ?? process.env[SERVER_ID_ENV];
    if (!serverId) return undefined;
    const region =
      this.#signing.region ?? FUNCTION_ARN_REGION.exec(functionName)?.[1] ?? process.env.AWS_REGION ?? "";
    if (!REGION_PATTERN.test(region))
      throw new ConfigurationError(
        "no region to sign the caller identity for: set AWS_REGION, pass region, or invoke token-vend by its ARN",
      );
    const key = `${serverId}\n${region}`;
    let signer = this.#signers.get(key);
    if (!signer) {
      const { stsEndpoint, credentials } = this.#signing;
      signer = new IdentitySigner({
        serverId,
        region,
        now: this.#now,
        ...(stsEndpoint ? { stsEndpoint } : {}),
        ...(credentials ? { credentials } : {}),
      });
      this.#signers.set(key, signer);
    }
    try {
      return await signer.identity();
    } catch (error) {
      const name = error instanceof Error ? error.name : "Error";
      throw new TokenVendInvokeError(
        `could not sign this consumer's AWS identity for token-vend (${name}): check the function's credentials`,
        { cause: error, awsErrorName: name, retryAfterSeconds: 1 },
      );
    }
  }
}

/** Checks the documented answer shape; never puts the payload in a message (it holds a token). */
function parseAnswer(text: string): Entry {
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    throw new InvalidVendAnswer("token-vend's answer is not JSON");
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload))
    throw new InvalidVendAnswer("token-vend's answer is not an object");
  const p = payload as Record<string, unknown>;
  const bad = (field: string) => new InvalidVendAnswer(`token-vend's answer has no valid "${field}"`);
  if (typeof p.accessToken !== "string" || p.accessToken === "") throw bad("accessToken");
  if (p.tokenType !== "Bearer") throw bad("tokenType");
  const expiresAtMs = typeof p.expiresAt === "string" ? Date.parse(p.expiresAt) : Number.NaN;
  if (!Number.isFinite(expiresAtMs)) throw bad("expiresAt");
  if (!Number.isInteger(p.generation)) throw bad("generation");
  if (typeof p.baseUrl !== "string" || p.baseUrl === "") throw bad("baseUrl");
  if (p.division !== null && !Number.isInteger(p.division)) throw bad("division");
  const answer: AccessToken = Object.freeze({
    accessToken: p.accessToken,
    tokenType: "Bearer",
    expiresAt: p.expiresAt as string,
    generation: p.generation as number,
    baseUrl: p.baseUrl,
    division: p.division as number | null,
  });
  return { answer, expiresAtMs };
}
