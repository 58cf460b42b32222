import { createBroker } from "../lib/broker.js";
import { createRefreshWorkerHandler } from "../lib/handlers/refresh-worker-handler.js";
import { createLogger } from "../lib/log/logger.js";

const logger = createLogger({ serviceName: "refresh-worker" });

export const handler = createRefreshWorkerHandler(createBroker(process.env, { log: logger }), logger);
