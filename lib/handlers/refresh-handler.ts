import type { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { parser } from "@aws-lambda-powertools/parser/middleware";
import middy from "@middy/core";
import type { Broker } from "../broker.js";
import type { DispatchSummary } from "../chain/refresh-dispatch.js";
import type { RefreshRunSummary } from "../chain/scheduled-refresh.js";
import { invocationDeadlineMs } from "./deadline.js";
import { errorBoundary } from "./error-boundary.js";
import { scheduledEventSchema } from "./events.js";
import { healHandoff } from "./heal-handoff.js";

/**
 * The scheduled refresh Lambda (EventBridge, every minute). With a queue (the stack's
 * REFRESH_QUEUE_URL) it dispatches the due chains to the refresh-worker; without one it does
 * their work itself (ScheduledRefresh), as before the queue existed.
 */
export function createRefreshHandler(broker: Broker, logger: Logger) {
  const metrics = new Metrics({ namespace: "ExactTokenBroker", serviceName: "refresh" });
  return middy<unknown, RefreshRunSummary | DispatchSummary>()
    .use(logMetrics(metrics))
    .use(errorBoundary({ logger, metrics }))
    .use(parser({ schema: scheduledEventSchema }))
    .use(healHandoff(broker.healTrigger))
    .handler(async (_event, context) => {
      const deadlineMs = invocationDeadlineMs(context, broker.deps.now);
      const options = deadlineMs !== undefined ? { deadlineMs } : {};
      if (broker.dispatch) {
        const summary = await broker.dispatch.run(options);
        metrics.addMetric("RefreshesDispatched", MetricUnit.Count, summary.dispatched);
        metrics.addMetric("RefreshesDeferred", MetricUnit.Count, summary.deferred);
        return summary;
      }
      const summary = await broker.refresh.run(options);
      metrics.addMetric(
        "Refreshes",
        MetricUnit.Count,
        summary.outcomes.refreshed + summary.outcomes.keepalive,
      );
      metrics.addMetric("RefreshFailures", MetricUnit.Count, summary.outcomes.failed);
      return summary;
    });
}
