import type { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { parser } from "@aws-lambda-powertools/parser/middleware";
import middy from "@middy/core";
import type { Broker } from "../broker.js";
import type { HealResult } from "../chain/heal-door.js";
import { invocationDeadlineMs } from "./deadline.js";
import { errorBoundary } from "./error-boundary.js";
import { type HealEvent, healEventSchema } from "./events.js";

/**
 * fallback-login: heals one connection. Invoked asynchronously (retries off) by vends and the
 * refresher that find a chain broken, and by operators. A duplicate delivery finds the lease
 * taken or the chain healed and does nothing.
 */
export function createFallbackLoginHandler(broker: Broker, logger: Logger) {
  const metrics = new Metrics({ namespace: "ExactTokenBroker", serviceName: "fallback-login" });
  return middy<HealEvent, HealResult>()
    .use(logMetrics(metrics))
    .use(errorBoundary({ logger, metrics }))
    .use(parser({ schema: healEventSchema }))
    .handler(async (event, context) => {
      const deadlineMs = invocationDeadlineMs(context, broker.deps.now);
      const result = await broker.heal.heal(event.connectionId, {
        operator: event.operator ?? false,
        ...(deadlineMs !== undefined ? { deadlineMs } : {}),
      });
      logger.info("fallback-login finished", { connectionId: event.connectionId, ...result });
      metrics.addMetric(
        result.kind === "healed" || result.kind === "verified"
          ? "Heals"
          : result.kind === "failed"
            ? "HealFailures"
            : "HealsSkipped",
        MetricUnit.Count,
        1,
      );
      return result;
    });
}
