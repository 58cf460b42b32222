import type middy from "@middy/core";
import type { HealTrigger } from "../chain/engine-deps.js";
import { DEADLINE_MARGIN_MS } from "./deadline.js";

/**
 * Holds a handler's answer, or its error, until the heals it triggered have been handed to
 * fallback-login ({@link HealTrigger.handedOff}), within the invocation's remaining time less
 * the margin. A heal trigger is an asynchronous Lambda invoke the vend or refresh does not wait
 * for; once the handler returns, the runtime may freeze the container before that invoke is
 * sent. Use it last, so it runs before the other middlewares' `after` and `onError`.
 */
export function healHandoff(trigger: HealTrigger): middy.MiddlewareObj {
  const wait: middy.MiddlewareFn = async (request) => {
    const context = request.context as { getRemainingTimeInMillis?: () => number } | undefined;
    const remainingMs = context?.getRemainingTimeInMillis?.();
    await trigger.handedOff(remainingMs === undefined ? undefined : remainingMs - DEADLINE_MARGIN_MS);
  };
  return { after: wait, onError: wait };
}
