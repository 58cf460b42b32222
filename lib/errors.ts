/**
 * Every failure a caller can act on is a `BrokerError` subclass with a stable `name`.
 * The `name` is what leaves a Lambda as `errorType`, so consumers switch on it.
 *
 * No message may contain a token, a password or any other secret: messages are built
 * from identifiers and reasons only.
 */
export class BrokerError extends Error {
  /** Seconds after which a retry may succeed; only set on retryable errors. */
  readonly retryAfterSeconds: number | undefined;

  constructor(message: string, options?: ErrorOptions & { retryAfterSeconds?: number }) {
    super(message, options);
    // Subclasses also declare their name as a literal: minified bundles rename classes, and the
    // name is the errorType every caller switches on.
    this.name = new.target.name;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }

  get retryable(): boolean {
    return this.retryAfterSeconds !== undefined;
  }
}

/** Bad input: an event, a CLI argument, a control-API body. */
export class ValidationError extends BrokerError {
  override name = "ValidationError";
}

/** Broken configuration found at start (environment, secrets file, key material). */
export class ConfigurationError extends BrokerError {
  override name = "ConfigurationError";
}

/** No connection with that ID exists. */
export class ConnectionNotFound extends BrokerError {
  override name = "ConnectionNotFound";
}

/** The chain cannot give a token until a person (or the fallback login) authorizes again. */
export class ReauthRequired extends BrokerError {
  override name = "ReauthRequired";
}

/** Another invocation holds the chain's lease and did not finish before our deadline. */
export class ChainBusy extends BrokerError {
  override name = "ChainBusy";
}

/**
 * This process's clock may differ from DynamoDB's by more than the bound the lease protocol
 * tolerates (CLOCK_SKEW_BOUND_MS, lib/chain/timing.ts), as measured from DynamoDB's `Date`
 * headers (lib/chain/clock-skew.ts). It takes no lease until its clock is fixed: a lease judged
 * on a wrong clock could let two token calls for one chain run at once (design invariant 1).
 */
export class ClockSkewed extends BrokerError {
  override name = "ClockSkewed";
}

/** Exact answered 5xx, did not answer, or the chain is backing off after such answers. */
export class ExactUnavailable extends BrokerError {
  override name = "ExactUnavailable";
}

/** Exact (or our own error budget, kept below Exact's) asks us to slow down. */
export class Throttled extends BrokerError {
  override name = "Throttled";
}

/**
 * Exact refuses the connection's user (blocked, inactive, licence expired, no access to the
 * division): no login can fix it. The broker checks again on a slow schedule (retryAfterSeconds
 * says when) and serves again by itself once Exact accepts the user.
 */
export class UserBlocked extends BrokerError {
  override name = "UserBlocked";
}

/** A second connection would share one Exact chain (same client ID and Exact user). */
export class DuplicateChain extends BrokerError {
  override name = "DuplicateChain";
}

/** A secret could not be found or does not have the documented shape. */
export class SecretUnavailable extends BrokerError {
  override name = "SecretUnavailable";
}

/** A stored token did not decrypt (wrong key, wrong item, corrupted). */
export class TokenDecryptError extends BrokerError {
  override name = "TokenDecryptError";
}

/**
 * KMS (or the branch key store) did not answer a decrypt: the token is not at fault, and its
 * chain is left as it is. token-vend answers it as InternalError (an AWS failure).
 */
export class EncryptionUnavailable extends BrokerError {
  override name = "EncryptionUnavailable";
}

/**
 * token-vend refuses the caller (VEND_AUTHORIZATION=perConnection, lib/auth/): no verified AWS
 * identity, or one that was not granted this connection. Decided before any chain work. The
 * message names the verified principal and the grant it lacks; never a signature or credential.
 */
export class AccessDenied extends BrokerError {
  override name = "AccessDenied";
}

/**
 * STS failed, throttled or did not answer while token-vend verified a caller's identity. The
 * caller is not at fault; a retry may pass. token-vend answers it as InternalError (an AWS failure).
 */
export class StsUnavailable extends BrokerError {
  override name = "StsUnavailable";
}
