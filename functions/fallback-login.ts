import { createBroker } from "../lib/broker.js";
import { loadConfig } from "../lib/config.js";
import { OneExactIdentityDriver } from "../lib/exact/login/one-exact-identity-driver.js";
import { createFallbackLoginHandler } from "../lib/handlers/fallback-login-handler.js";
import { createLogger } from "../lib/log/logger.js";

const logger = createLogger({ serviceName: "fallback-login" });
const { allowLoopback } = loadConfig(process.env);

/** The only function that carries the login driver. */
export const handler = createFallbackLoginHandler(
  createBroker(process.env, { log: logger, login: new OneExactIdentityDriver({ allowLoopback }) }),
  logger,
);
