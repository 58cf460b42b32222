import { createBroker } from "../lib/broker.js";
import { createRefreshHandler } from "../lib/handlers/refresh-handler.js";
import { createLogger } from "../lib/log/logger.js";

const logger = createLogger({ serviceName: "refresh" });

export const handler = createRefreshHandler(createBroker(process.env, { log: logger }), logger);
