import { App, type AppProps, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { VendAuthorization } from "../auth/authorization-settings.js";
import { contextChoice, contextFlag, contextString } from "./app-context.js";
import { BrokerStack, type BrokerStackProps } from "./broker-stack.js";

/** The stack's ID in the app (and the CloudFormation stack name). */
export const BROKER_STACK_ID = "ExactTokenBroker";

/**
 * The CDK app `cdk synth`/`cdk deploy` run (app.ts), with cdk-nag's AwsSolutions checks as a
 * validation plugin: any unacknowledged finding fails the synth. Tests build the same app.
 */
export function createBrokerApp(
  options: { readonly app?: AppProps; readonly stack?: BrokerStackProps } = {},
): { app: App; stack: BrokerStack } {
  const app = new App(options.app);
  const alarmEmail = contextString(app, "alarmEmail");
  // `-c reserveConcurrency=false` for accounts still at Lambda's default concurrency limit of 10.
  const reserveConcurrency = contextFlag(app, "reserveConcurrency");
  // `-c combinedSecrets=true` while a deployment made before the split moves its connections' secrets.
  const combinedSecrets = contextFlag(app, "combinedSecrets");
  // `-c vendAuthorization=stackWide` keeps a deployment made before issue 10 serving every caller while it moves.
  const vendAuthorization = contextChoice(app, "vendAuthorization", Object.values(VendAuthorization));
  // `-c tokenPacking=false` for the first deploy of an upgrade from a release that reads no packed token.
  const tokenPacking = contextFlag(app, "tokenPacking");
  const stack = new BrokerStack(app, BROKER_STACK_ID, {
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
    ...(alarmEmail ? { alarmEmail } : {}),
    ...(reserveConcurrency === undefined ? {} : { reserveConcurrency }),
    ...(combinedSecrets === undefined ? {} : { combinedSecrets }),
    ...(vendAuthorization ? { vendAuthorization } : {}),
    ...(tokenPacking === undefined ? {} : { tokenPacking }),
    ...options.stack,
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}
