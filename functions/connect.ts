import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { createBroker } from "../lib/broker.js";
import { createConnectHandler } from "../lib/handlers/connect-handler.js";
import { createLogger } from "../lib/log/logger.js";
import { createLinkKeySource } from "../lib/onboarding/link-key-source.js";

const logger = createLogger({ serviceName: "connect" });
const dynamo = new DynamoDBClient({});

/**
 * Created once per container: warm invocations reuse the DynamoDB client, the keyring and the
 * cached link key. LINK_SIGNING_SECRET_ID names the key; CONNECT_URL is optional (a custom domain).
 */
export const handler = createConnectHandler({
  broker: createBroker(process.env, { log: logger, dynamo }),
  keys: createLinkKeySource(process.env),
  logger,
  dynamo,
  ...(process.env.CONNECT_URL ? { connectUrl: process.env.CONNECT_URL } : {}),
});
