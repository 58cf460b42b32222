import type { Logger } from "@aws-lambda-powertools/logger";
import { type Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { ParseError } from "@aws-lambda-powertools/parser";
import type middy from "@middy/core";
import { BrokerError, ValidationError } from "../errors.js";
import { formatErrorMessage } from "./error-message.js";

/** errorType for failures that are ours, not the caller's or Exact's; retry after a second. */
export const INTERNAL_ERROR = "InternalError";

/** An issue as a Standard Schema reports it (zod's issues have the same two fields). */
interface SchemaIssue {
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>;
  readonly message: string;
}

/**
 * `invalid event: <field>: <what>; …`. The parser puts a Standard Schema's issues on the error's
 * cause, as an array (lib/handlers/event-schema.ts); a ZodError holds them as `issues`.
 */
function describeParseError(error: ParseError): string {
  const cause = error.cause as SchemaIssue[] | { issues?: SchemaIssue[] } | undefined;
  const list = Array.isArray(cause) ? cause : cause?.issues;
  const issues = list?.map((issue) => {
    const path = (issue.path ?? []).map((part) => String(typeof part === "object" ? part.key : part));
    return `${path.join(".") || "event"}: ${issue.message}`;
  });
  return `invalid event: ${issues?.length ? issues.join("; ") : "does not match the schema"}`;
}

/**
 * Turns anything a handler threw into the error a Lambda caller sees. With `contract`, a broker
 * error whose type is not in it (ClockSkewed, TokenDecryptError, …: the broker's own trouble, not
 * the caller's) leaves as InternalError: callers switch on a fixed set of errorTypes.
 */
export function toEdgeError(error: unknown, contract?: ReadonlySet<string>): Error {
  const typed =
    error instanceof ParseError ? new ValidationError(describeParseError(error), { cause: error }) : error;
  const known = typed instanceof BrokerError && (contract === undefined || contract.has(typed.name));
  const edge = new Error(
    known
      ? formatErrorMessage(typed.message, typed.retryAfterSeconds)
      : formatErrorMessage("internal error in the token broker; see its logs", 1),
  );
  edge.name = known ? typed.name : INTERNAL_ERROR;
  return edge;
}

/**
 * The one place where errors leave a Lambda (style.md: "map errors at the edge"): a stable
 * `errorType`, a message without secrets that ends in the retry hint, a log line, a metric.
 */
export function errorBoundary(options: {
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** The errorTypes callers are promised (token-vend's table in the README); others leave as InternalError. */
  readonly contract?: ReadonlySet<string>;
}): middy.MiddlewareObj {
  const onError: middy.MiddlewareFn = async (request) => {
    const edge = toEdgeError(request.error, options.contract);
    const known = request.error instanceof BrokerError || request.error instanceof ParseError;
    if (known) {
      options.logger.warn("request refused", {
        errorType: edge.name,
        errorMessage: edge.message,
        ...(edge.name !== (request.error as Error).name
          ? { brokerErrorType: (request.error as Error).name }
          : {}),
      });
    } else options.logger.error("unexpected failure", { error: request.error as Error });
    options.metrics?.addDimensions({ errorType: edge.name });
    options.metrics?.addMetric("Errors", MetricUnit.Count, 1);
    request.error = edge;
  };
  return { onError };
}
