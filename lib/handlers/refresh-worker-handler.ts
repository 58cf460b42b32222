import type { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { SQSEvent } from "aws-lambda";
import type { Broker } from "../broker.js";
import type { DueChainMessage } from "../chain/refresh-dispatch.js";
import type { RefreshWorkerSummary } from "../chain/refresh-worker.js";
import { MalformedRefreshMessage, parseDueChainMessage } from "../queue/sqs-refresh-queue.js";
import { invocationDeadlineMs } from "./deadline.js";
import { errorBoundary } from "./error-boundary.js";
import { healHandoff } from "./heal-handoff.js";

/**
 * The refresh-worker Lambda (SQS, the dispatcher's queue): does each queued chain's work. It
 * hands no message back to the queue: a failure is recorded on the chain, which the dispatcher
 * finds overdue and queues again (refresh-dispatch.ts); a malformed message is logged and dropped.
 */
export function createRefreshWorkerHandler(broker: Broker, logger: Logger) {
  const metrics = new Metrics({ namespace: "ExactTokenBroker", serviceName: "refresh-worker" });
  return middy<SQSEvent, RefreshWorkerSummary>()
    .use(logMetrics(metrics))
    .use(errorBoundary({ logger, metrics }))
    .use(healHandoff(broker.healTrigger))
    .handler(async (event, context) => {
      const messages: DueChainMessage[] = [];
      for (const record of event.Records ?? []) {
        try {
          messages.push(parseDueChainMessage(record.body));
        } catch (error) {
          if (!(error instanceof MalformedRefreshMessage)) throw error;
          logger.error("refresh worker dropped a malformed message", {
            messageId: record.messageId,
            reason: error.message,
          });
          metrics.addMetric("MalformedRefreshMessages", MetricUnit.Count, 1);
        }
      }
      const deadlineMs =
        invocationDeadlineMs(context, broker.deps.now) ?? broker.deps.now() + broker.config.leaseMs * 2;
      const summary = await broker.refreshWorker.run(messages, deadlineMs);
      metrics.addMetric(
        "Refreshes",
        MetricUnit.Count,
        summary.outcomes.refreshed + summary.outcomes.keepalive,
      );
      metrics.addMetric("RefreshFailures", MetricUnit.Count, summary.outcomes.failed);
      return summary;
    });
}
