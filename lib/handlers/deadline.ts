import type { Context } from "aws-lambda";

/**
 * Kept back from the invocation's remaining time for what follows the engine: shaping the
 * answer, flushing metrics, the runtime's own bookkeeping.
 */
export const DEADLINE_MARGIN_MS = 500;

/**
 * The invocation's deadline in epoch ms on the engine's clock (`now`), from the Lambda
 * context's remaining time: the doors start no token call, login or sleep that cannot end
 * before it (design invariant 14). Undefined outside Lambda (no context): no deadline but the lease.
 */
export function invocationDeadlineMs(
  context: Pick<Context, "getRemainingTimeInMillis"> | undefined,
  now: () => number,
): number | undefined {
  if (!context || typeof context.getRemainingTimeInMillis !== "function") return undefined;
  return now() + context.getRemainingTimeInMillis() - DEADLINE_MARGIN_MS;
}
