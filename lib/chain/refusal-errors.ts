import { type BrokerError, ExactUnavailable, Throttled } from "../errors.js";
import { EventReason } from "../events/broker-events.js";
import type { TokenOutcome } from "../exact/classify-token-response.js";

/**
 * The retryable error a consumer sees when Exact refused or failed a refresh, with the wait
 * that Exact's answer or our backoff implies (`retryAfterSeconds`).
 */
export function refusalError(outcome: TokenOutcome, connectionId: string, waitMs?: number): BrokerError {
  const id = connectionId;
  switch (outcome.kind) {
    case "too_early":
      return new Throttled(`Exact refused the refresh of connection "${id}" as too early`, {
        retryAfterSeconds: 5,
      });
    case "rate_limited":
      return new Throttled(`Exact rate-limited connection "${id}"`, {
        retryAfterSeconds: Math.ceil((waitMs ?? outcome.retryAfterSeconds * 1000) / 1000),
      });
    case "unavailable":
      return new ExactUnavailable(
        `Exact token endpoint unavailable for connection "${id}" (${outcome.detail})`,
        {
          retryAfterSeconds: Math.max(1, Math.ceil((waitMs ?? 5_000) / 1000)),
        },
      );
    default:
      return new ExactUnavailable(`Exact refused the refresh of connection "${id}"`, {
        retryAfterSeconds: 60,
      });
  }
}

/** The message a consumer sees for a chain that needs an operator; says what to do. */
export function reauthMessage(connectionId: string, status: string, reason: string): string {
  if (reason === EventReason.InvalidClient) {
    return `connection "${connectionId}": Exact rejected the client ID or secret; fix the connection's secret, then run: exact-broker heal --id ${connectionId}`;
  }
  if (reason === EventReason.DivisionUnreachable) {
    return `connection "${connectionId}": its Exact user can no longer open the connection's pinned division; give the user access to it in Exact, then run: exact-broker heal --id ${connectionId}; or pin another division: exact-broker connection set-division --id ${connectionId} --division N`;
  }
  return `connection "${connectionId}" needs an operator (status ${status}, reason ${reason}); fix the cause (see exact-broker status --id ${connectionId}), then run: exact-broker heal --id ${connectionId}`;
}
