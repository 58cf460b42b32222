import type { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { parser } from "@aws-lambda-powertools/parser/middleware";
import middy from "@middy/core";
import type { Broker } from "../broker.js";
import type { VendAnswer } from "../chain/token-cache.js";
import { invocationDeadlineMs } from "./deadline.js";
import { errorBoundary } from "./error-boundary.js";
import { type VendEvent, vendEventSchema } from "./events.js";
import { healHandoff } from "./heal-handoff.js";

/** What a token-vend caller may get as errorType (README, "token-vend"); anything else is InternalError. */
export const VEND_ERROR_TYPES: ReadonlySet<string> = new Set([
  "ValidationError",
  "ConnectionNotFound",
  "ReauthRequired",
  "ChainBusy",
  "ExactUnavailable",
  "Throttled",
  "UserBlocked",
  "AccessDenied",
]);

/**
 * The token-vend Lambda: validate, authorize the caller (lib/auth/: before any chain work), vend,
 * answer. Behaviour lives in the authorizer and the vend door.
 *
 * @throws ConfigurationError at creation (the function's init) when VEND_AUTHORIZATION=perConnection
 *   lacks BROKER_SERVER_ID or AWS_REGION
 */
export function createTokenVendHandler(broker: Broker, logger: Logger) {
  broker.authorizer.assertReady();
  const metrics = new Metrics({ namespace: "ExactTokenBroker", serviceName: "token-vend" });
  const window = broker.config.refreshWindowSeconds;
  return middy<VendEvent, VendAnswer>()
    .use(logMetrics(metrics))
    .use(errorBoundary({ logger, metrics, contract: VEND_ERROR_TYPES }))
    .use(parser({ schema: vendEventSchema(window) }))
    .use(healHandoff(broker.healTrigger))
    .handler(async (event, context) => {
      const startMs = Date.now();
      const waitsBefore = broker.vend.leaseWaits;
      const deadlineMs = invocationDeadlineMs(context, broker.deps.now);
      const { caller, outcome } = await broker.authorizer.authorize(
        event.connectionId,
        event.callerIdentity,
        deadlineMs,
      );
      // Under stackWide, so an operator sees when it is safe to switch: what perConnection would
      // refuse, and what could not be checked at all (STS down, no BROKER_SERVER_ID), which
      // WouldDeny cannot count.
      if (outcome === "wouldDeny") metrics.addMetric("WouldDeny", MetricUnit.Count, 1);
      if (outcome === "unchecked") metrics.addMetric("CallerUnchecked", MetricUnit.Count, 1);
      metrics.addMetric("AuthLatency", MetricUnit.Milliseconds, Date.now() - startMs);
      const answer = await broker.vend.vend(event.connectionId, event.minValiditySeconds ?? window, {
        ...(deadlineMs !== undefined ? { deadlineMs } : {}),
        ...(caller !== undefined ? { caller } : {}),
        ...(event.rejectedGeneration !== undefined ? { rejectedGeneration: event.rejectedGeneration } : {}),
      });
      // A Lambda container serves one invocation at a time, so the increase is this vend's.
      metrics.addMetric("LeaseWaits", MetricUnit.Count, broker.vend.leaseWaits - waitsBefore);
      metrics.addMetric("Vends", MetricUnit.Count, 1);
      metrics.addMetric("VendLatency", MetricUnit.Milliseconds, Date.now() - startMs);
      return answer;
    });
}
