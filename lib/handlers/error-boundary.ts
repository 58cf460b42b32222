import type { Logger } from "@aws-lambda-powertools/logger";
import { type Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { ParseError } from "@aws-lambda-powertools/parser";
import type middy from "@middy/core";
import { BrokerError, ValidationError } from "../errors.js";
import { formatErrorMessage } from "./error-message.js";

/** errorType for failures that are ours, not the caller's or Exact's; retry after a second. */
export const INTERNAL_ERROR = "InternalError";

function describeParseError(error: ParseError): string {
  const cause = error.cause as { issues?: Array<{ path: PropertyKey[]; message: string }> } | undefined;
  const issues = cause?.issues?.map(
    (issue) => `${issue.path.map(String).join(".") || "event"}: ${issue.message}`,
  );
  return `invalid event: ${issues?.join("; ") ?? "does not match the schema"}`;
}

/** Turns anything a handler threw into the error a Lambda caller sees. */
export function toEdgeError(error: unknown): Error {
  const typed =
    error instanceof ParseError ? new ValidationError(describeParseError(error), { cause: error }) : error;
  const edge = new Error(
    typed instanceof BrokerError
      ? formatErrorMessage(typed.message, typed.retryAfterSeconds)
      : formatErrorMessage("internal error in the token broker; see its logs", 1),
  );
  edge.name = typed instanceof BrokerError ? typed.name : INTERNAL_ERROR;
  return edge;
}

/**
 * The one place where errors leave a Lambda (style.md: "map errors at the edge"): a stable
 * `errorType`, a message without secrets that ends in the retry hint, a log line, a metric.
 */
export function errorBoundary(options: {
  readonly logger: Logger;
  readonly metrics?: Metrics;
}): middy.MiddlewareObj {
  const onError: middy.MiddlewareFn = async (request) => {
    const edge = toEdgeError(request.error);
    const known = request.error instanceof BrokerError || request.error instanceof ParseError;
    if (known) options.logger.warn("request refused", { errorType: edge.name, errorMessage: edge.message });
    else options.logger.error("unexpected failure", { error: request.error as Error });
    options.metrics?.addDimensions({ errorType: edge.name });
    options.metrics?.addMetric("Errors", MetricUnit.Count, 1);
    request.error = edge;
  };
  return { onError };
}
