/**
 * exact-token-broker/cdk: the broker as a CDK construct, for a team's own app.
 *
 *   import { ExactTokenBroker } from "exact-token-broker/cdk";
 *
 *   const broker = new ExactTokenBroker(this, "Broker", { alarmEmail: "ops@example.com" });
 *   broker.grantVend(reportingFn, { connections: ["acme"] });
 *
 * The package's CDK barrel: the construct, the bundled app's stack, the outputs helper and the
 * types their props and public properties name. It loads aws-cdk-lib and constructs, and not
 * cdk-nag (a dev dependency), which only the bundled app (broker-app.ts) runs.
 */

export { VendAuthorization } from "../auth/authorization-settings.js";
export type { BranchKeyStoreConstruct } from "./branch-key-store.js";
export type { BrokerFunctions } from "./broker-functions.js";
export { addBrokerOutputs } from "./broker-outputs.js";
export type { BrokerSecrets } from "./broker-secrets.js";
export { BrokerStack, type BrokerStackProps } from "./broker-stack.js";
export type { ChainTableConstruct } from "./chain-table.js";
export { ExactTokenBroker, type ExactTokenBrokerProps } from "./exact-token-broker.js";
export { EngineSettings } from "./function-settings.js";
export type { Observability } from "./observability.js";
export type { OnboardingUrl } from "./onboarding-url.js";
export type { RateBudgetTableConstruct } from "./rate-budget-table.js";
export type { TokenKey } from "./token-key.js";
export type { VendGrantOptions } from "./vend-grants.js";
