import { CfnOutput } from "aws-cdk-lib";
import type { Construct } from "constructs";
import type { ExactTokenBroker } from "./exact-token-broker.js";
import { CLIENT_SECRET_PREFIX, LOGIN_SECRET_PREFIX } from "./names.js";

/**
 * The stack outputs operators and consumers read (README, "Deploy"): the environment for
 * `exact-broker` against the deployment, what consumers invoke and sign, the URL to register at
 * Exact. The construct adds none itself, so a team's stack gets outputs only if it asks.
 *
 * Called with a stack as `scope`, the outputs' logical IDs are the names below (`TableName`, …);
 * called with a construct inside a stack, CDK prefixes each with that construct's path and a
 * hash. A stack holding two brokers gives each its own scope.
 */
export function addBrokerOutputs(scope: Construct, broker: ExactTokenBroker): void {
  const output = (id: string, value: string, description: string) =>
    new CfnOutput(scope, id, { value, description });
  const {
    chains,
    tokenKey,
    branchKeys,
    eventBus,
    functions,
    onboarding,
    secrets,
    observability,
    rateBudget,
  } = broker;
  output("TableName", chains.table.tableName, "TABLE_NAME for exact-broker against this deployment");
  output("KmsKeyArn", tokenKey.key.keyArn, "KMS_KEY_ARN for exact-broker against this deployment");
  output(
    "BranchKeyStoreTableName",
    branchKeys.table.tableName,
    "BRANCH_KEY_STORE_TABLE_NAME for exact-broker against this deployment",
  );
  output("BranchKeyId", branchKeys.branchKeyId, "BRANCH_KEY_ID for exact-broker against this deployment");
  output("EventBusName", eventBus.eventBusName, "The broker's events (ChainBroken, ReauthRequired, …)");
  output("TokenVendFunctionName", functions.tokenVend.functionName, "What consumers invoke");
  output("TokenVendFunctionArn", functions.tokenVend.functionArn, "What consumers invoke");
  output(
    "BrokerServerId",
    broker.serverId,
    "TOKEN_VEND_SERVER_ID for consumers (the signed server-ID header)",
  );
  output(
    "FallbackLoginFunctionName",
    functions.fallbackLogin.functionName,
    "FALLBACK_LOGIN_FUNCTION_NAME for exact-broker heal",
  );
  output("ConnectUrl", onboarding.connectUrl, "Base of the one-time connect links");
  output(
    "CallbackUrl",
    onboarding.callbackUrl,
    "Register this redirect URI for the app in Exact's App Center",
  );
  output(
    "ClientSecretPrefix",
    CLIENT_SECRET_PREFIX,
    "Client secrets: <prefix><connection ID>, readable by every function but the refresh dispatcher",
  );
  output(
    "LoginSecretPrefix",
    LOGIN_SECRET_PREFIX,
    "Login credentials: <prefix><connection ID>, readable by fallback-login only",
  );
  output(
    "LinkSigningSecretArn",
    secrets.linkSigningKey.secretArn,
    "LINK_SIGNING_SECRET_ID for exact-broker connect",
  );
  output(
    "RateBudgetTableName",
    rateBudget.table.tableName,
    "RATE_BUDGET_TABLE_NAME for consumers sharing Exact's rate limits (grantVend sets it on a function)",
  );
  output("AlertsTopicArn", observability.alertsTopic.topicArn, "Alarms and ReauthRequired events");
  output("DashboardName", observability.dashboard.dashboardName, "CloudWatch dashboard");
}
