/**
 * The Lambda Node runtime hands a caller only `errorType` (the error's `name`) and
 * `errorMessage`. Retryable errors carry their wait at the end of the message in a fixed,
 * documented form that the client library parses:
 *
 *   `<what happened and what to do> (retryAfterSeconds=<integer>)`
 */
const RETRY_SUFFIX = /\s*\(retryAfterSeconds=(\d+)\)$/;

export function formatErrorMessage(message: string, retryAfterSeconds: number | undefined): string {
  return retryAfterSeconds === undefined
    ? message
    : `${message} (retryAfterSeconds=${Math.max(0, Math.ceil(retryAfterSeconds))})`;
}

/** Splits an errorMessage back into its text and `retryAfterSeconds` (undefined if absent). */
export function parseErrorMessage(errorMessage: string): {
  message: string;
  retryAfterSeconds: number | undefined;
} {
  const match = RETRY_SUFFIX.exec(errorMessage);
  return match
    ? { message: errorMessage.slice(0, match.index), retryAfterSeconds: Number(match[1]) }
    : { message: errorMessage, retryAfterSeconds: undefined };
}
