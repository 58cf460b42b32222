import {
  AccessDenied,
  BrokerError,
  ChainBusy,
  ClockSkewed,
  ConfigurationError,
  ConnectionNotFound,
  DuplicateChain,
  ExactUnavailable,
  ReauthRequired,
  SecretUnavailable,
  Throttled,
  UserBlocked,
  ValidationError,
} from "../errors.js";

/** `exact-broker` exit codes; scripts may rely on them. */
export const ExitCode = {
  Done: 0,
  BadInput: 2,
  NotFound: 3,
  /**
   * A duplicate chain, a chain that needs a new authorization, a clock too far off to lease, or
   * token-vend's AccessDenied (a caller without a grant).
   */
  Refused: 4,
  TryLater: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof ValidationError || error instanceof ConfigurationError) return ExitCode.BadInput;
  if (error instanceof ConnectionNotFound || error instanceof SecretUnavailable) return ExitCode.NotFound;
  if (
    error instanceof ReauthRequired ||
    error instanceof DuplicateChain ||
    error instanceof ClockSkewed ||
    error instanceof UserBlocked ||
    error instanceof AccessDenied
  )
    return ExitCode.Refused;
  if (error instanceof ChainBusy || error instanceof ExactUnavailable || error instanceof Throttled)
    return ExitCode.TryLater;
  if (error instanceof BrokerError) return ExitCode.TryLater;
  return ExitCode.TryLater;
}
