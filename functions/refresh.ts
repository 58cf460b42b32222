import { createBroker } from "../lib/broker.js";
import { createRefreshHandler } from "../lib/handlers/refresh-handler.js";
import { createLogger } from "../lib/log/logger.js";
import { SqsRefreshQueue } from "../lib/queue/sqs-refresh-queue.js";

const logger = createLogger({ serviceName: "refresh" });
const queueUrl = process.env.REFRESH_QUEUE_URL;

export const handler = createRefreshHandler(
  createBroker(process.env, {
    log: logger,
    ...(queueUrl ? { refreshQueue: new SqsRefreshQueue({ queueUrl }) } : {}),
  }),
  logger,
);
