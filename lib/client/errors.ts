import {
  AccessDenied,
  BrokerError,
  ChainBusy,
  ConnectionNotFound,
  ExactUnavailable,
  ReauthRequired,
  Throttled,
  UserBlocked,
  ValidationError,
} from "../errors.js";
import { parseErrorMessage } from "../handlers/error-message.js";

/*
 * The errors a consumer of token-vend can get. The broker-side classes are reused as they are,
 * so `instanceof ReauthRequired` means the same on both sides of the invoke. Every `name` is set
 * explicitly (not only from the class name) so it stays right in a consumer bundle that
 * minifies class names.
 *
 * No message holds a token: broker messages are token-free by contract (README, token-vend), and
 * nothing here puts an answer's payload into a message.
 */

/** token-vend's `InternalError`: a broker bug or an AWS failure on the broker's side; retryable. */
export class InternalError extends BrokerError {
  constructor(message: string, options?: ErrorOptions & { retryAfterSeconds?: number }) {
    super(message, options);
    this.name = "InternalError";
  }
}

/**
 * token-vend failed with an errorType this library does not know: a newer broker, or the Lambda
 * runtime itself (`Sandbox.Timedout`, `Runtime.ImportModuleError`, out of memory, …).
 * `errorType` is what Lambda reported; `retryAfterSeconds` only if the message carried the suffix.
 */
export class UnknownBrokerError extends BrokerError {
  readonly errorType: string;

  constructor(errorType: string, message: string, options?: ErrorOptions & { retryAfterSeconds?: number }) {
    super(message, options);
    this.name = "UnknownBrokerError";
    this.errorType = errorType;
  }
}

/**
 * The Lambda service refused or failed the invoke itself, before or around token-vend
 * (throttling, no such function, not allowed to invoke, a Lambda 5xx, no network or
 * credentials). The AWS SDK's error is the `cause`; `retryAfterSeconds` is set when waiting helps.
 */
export class TokenVendInvokeError extends BrokerError {
  /** The AWS SDK error's name, e.g. `TooManyRequestsException`, `ResourceNotFoundException`. */
  readonly awsErrorName: string;

  constructor(message: string, options: ErrorOptions & { retryAfterSeconds?: number; awsErrorName: string }) {
    super(message, options);
    this.name = "TokenVendInvokeError";
    this.awsErrorName = options.awsErrorName;
  }
}

/**
 * The caller's deadline (`deadlineMs`) passed while it waited: for token-vend, for the rate
 * budget or for Exact. Nothing was cached or retried after it; what ran on (a shared invoke)
 * still fills the cache for later calls. Not retryable within this deadline, hence no
 * `retryAfterSeconds`; a later call with time left may succeed.
 */
export class DeadlineExceeded extends BrokerError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DeadlineExceeded";
  }
}

/** token-vend answered without a function error, but not with the documented answer shape. */
export class InvalidVendAnswer extends BrokerError {
  constructor(message: string) {
    super(message);
    this.name = "InvalidVendAnswer";
  }
}

type BrokerErrorClass = new (
  message: string,
  options?: ErrorOptions & { retryAfterSeconds?: number },
) => BrokerError;

/** token-vend's documented errorTypes (README, token-vend) and the class each one becomes. */
const KNOWN_ERROR_TYPES: Readonly<Record<string, BrokerErrorClass>> = {
  ValidationError,
  ConnectionNotFound,
  ReauthRequired,
  ChainBusy,
  ExactUnavailable,
  Throttled,
  UserBlocked,
  AccessDenied,
  InternalError,
};

/** Long enough for any broker or runtime message; bounds what an unknown failure can put in a log. */
const MAX_MESSAGE_LENGTH = 500;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function truncate(text: string): string {
  return text.length > MAX_MESSAGE_LENGTH ? `${text.slice(0, MAX_MESSAGE_LENGTH)}…` : text;
}

/**
 * Turns a `FunctionError` answer (payload `{"errorType", "errorMessage"}`) back into the error
 * token-vend threw, with `retryAfterSeconds` from the `(retryAfterSeconds=N)` suffix.
 */
export function errorFromFunctionError(functionError: string, payloadText: string): BrokerError {
  let payload: unknown;
  try {
    payload = JSON.parse(payloadText);
  } catch {
    payload = undefined;
  }
  const errorType =
    isRecord(payload) && typeof payload.errorType === "string" ? payload.errorType : functionError;
  const errorMessage =
    isRecord(payload) && typeof payload.errorMessage === "string"
      ? payload.errorMessage
      : "token-vend failed without an error message";
  const { message, retryAfterSeconds } = parseErrorMessage(errorMessage);
  const known = Object.hasOwn(KNOWN_ERROR_TYPES, errorType) ? KNOWN_ERROR_TYPES[errorType] : undefined;
  if (known) {
    const error = new known(message, { retryAfterSeconds });
    error.name = errorType;
    return error;
  }
  return new UnknownBrokerError(
    errorType,
    `token-vend failed with errorType ${JSON.stringify(truncate(errorType))}: ${truncate(message)}`,
    { retryAfterSeconds },
  );
}

/** When the SDK gives no Retry-After for a throttle or a Lambda 5xx (it already retried those). */
const DEFAULT_INVOKE_RETRY_SECONDS = 1;

function retryAfterFromSdk(error: Record<string, unknown>): number {
  const seconds = Number(error.retryAfterSeconds);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.ceil(seconds) : DEFAULT_INVOKE_RETRY_SECONDS;
}

/** Turns whatever `LambdaClient.send` threw into a `TokenVendInvokeError` that says what to do. */
export function errorFromInvokeFailure(functionName: string, error: unknown): TokenVendInvokeError {
  const record = isRecord(error) ? error : {};
  const name = typeof record.name === "string" ? record.name : "Error";
  const detail = typeof record.message === "string" ? truncate(record.message) : String(error);
  const metadata = isRecord(record.$metadata) ? record.$metadata : {};
  const status = typeof metadata.httpStatusCode === "number" ? metadata.httpStatusCode : undefined;
  const what = `could not invoke token-vend (${functionName})`;
  const make = (reason: string, retryAfterSeconds?: number) =>
    new TokenVendInvokeError(`${what}: ${reason} [${name}: ${detail}]`, {
      cause: error,
      awsErrorName: name,
      retryAfterSeconds,
    });

  if (name === "TooManyRequestsException" || status === 429)
    return make("Lambda throttled the invocation; retry later", retryAfterFromSdk(record));
  if (name === "ResourceNotFoundException" || status === 404)
    return make("no such function; check TOKEN_VEND_FUNCTION_NAME or the functionName option");
  if (name === "AccessDeniedException" || status === 403)
    return make("this role may not invoke it; grant it with the broker stack's grantVend");
  if (record.$fault === "server" || (status !== undefined && status >= 500))
    return make("the Lambda service failed; retry later", DEFAULT_INVOKE_RETRY_SECONDS);
  return make("the request did not reach token-vend");
}
