import { createBroker } from "../lib/broker.js";
import { createTokenVendHandler } from "../lib/handlers/token-vend-handler.js";
import { createLogger } from "../lib/log/logger.js";

const logger = createLogger({ serviceName: "token-vend" });

/** Created once per container: warm invocations reuse clients, keyring and token cache. */
export const handler = createTokenVendHandler(createBroker(process.env, { log: logger }), logger);
