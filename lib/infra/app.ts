import { App } from "aws-cdk-lib";
import { BrokerStack } from "./broker-stack.js";

const app = new App();
new BrokerStack(app, "ExactTokenBroker", {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
app.synth();
