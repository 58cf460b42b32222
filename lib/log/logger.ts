import { LogFormatter, Logger, LogItem } from "@aws-lambda-powertools/logger";
import type { LogAttributes, UnformattedAttributes } from "@aws-lambda-powertools/logger/types";
import { redact, redactString } from "./redactor.js";

/** A level name as Powertools accepts it (`"INFO"`, `"debug"`, …). */
export type LogLevelName = Parameters<Logger["setLogLevel"]>[0];

/** Options for {@link createLogger}. */
export interface CreateLoggerOptions {
  /** The `service` key of every line. */
  serviceName: string;
  /** @default `POWERTOOLS_LOG_LEVEL`, then `LOG_LEVEL`, then `INFO` (Powertools reads the environment itself). */
  level?: LogLevelName;
  /** Keys added to every line (a connection ID, a function role); redacted like everything else. */
  persistentKeys?: Record<string, unknown>;
}

/**
 * Powertools' standard JSON layout with every value passed through the redactor first.
 *
 * Redacting here rather than in a JSON replacer means the message, the extra objects, the
 * persistent keys and any Error (with its `cause` chain) are all scrubbed before Powertools
 * turns them into text, and child loggers inherit it because they reuse the parent's formatter.
 * Powertools does not export its own formatter, so the layout below mirrors its
 * `PowertoolsLogFormatter` (same keys, same order).
 */
export class RedactingLogFormatter extends LogFormatter {
  /** Builds one log item from already-collected attributes, redacting all of them. */
  override formatAttributes(
    attributes: UnformattedAttributes,
    additionalLogAttributes: LogAttributes,
  ): LogItem {
    const baseAttributes: LogAttributes = {
      level: attributes.logLevel,
      message: redactString(String(attributes.message ?? "")),
      timestamp: this.formatTimestamp(attributes.timestamp),
      service: attributes.serviceName,
      cold_start: attributes.lambdaContext?.coldStart,
      function_arn: attributes.lambdaContext?.invokedFunctionArn,
      function_memory_size: attributes.lambdaContext?.memoryLimitInMB,
      function_name: attributes.lambdaContext?.functionName,
      function_request_id: attributes.lambdaContext?.awsRequestId,
      sampling_rate: attributes.sampleRateValue,
      xray_trace_id: attributes.xRayTraceId,
      tenant_id: attributes.lambdaContext?.tenantId,
    };
    const extra = redact(additionalLogAttributes) as LogAttributes;
    return new LogItem({ attributes: baseAttributes }).addAttributes(extra);
  }

  /**
   * Powertools calls this for any Error it meets while stringifying. Those were redacted in
   * {@link formatAttributes} already; redacting again guards Errors that reach the logger
   * some other way (a future Powertools path) and costs nothing on lines without errors.
   * The Error is redacted, not the formatted object, so system error codes stay readable.
   */
  override formatError(error: Error): LogAttributes {
    return super.formatError(redact(error) as Error);
  }
}

/**
 * Creates a Powertools `Logger` whose every line goes through the redactor (design invariant 8).
 * The lines keep Powertools' standard JSON keys (`level`, `message`, `timestamp`, `service`, …).
 */
export function createLogger(options: CreateLoggerOptions): Logger {
  return new Logger({
    serviceName: options.serviceName,
    logFormatter: new RedactingLogFormatter(),
    ...(options.level !== undefined && { logLevel: options.level }),
    ...(options.persistentKeys !== undefined && { persistentKeys: options.persistentKeys }),
  });
}
