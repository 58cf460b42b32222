import { Fn } from "aws-cdk-lib";
import { type FunctionUrl, FunctionUrlAuthType, type IFunction } from "aws-cdk-lib/aws-lambda";
import { Construct } from "constructs";
import { ConnectPath } from "../onboarding/connect-url.js";

export interface OnboardingUrlProps {
  /** The connect function. */
  readonly connect: IFunction;
}

/**
 * The connect function's public URL: where an operator's one-time link sends a person, and where
 * Exact sends them back (`/callback`, to be registered as the app's redirect URI).
 */
export class OnboardingUrl extends Construct {
  readonly functionUrl: FunctionUrl;
  /** `https://<id>.lambda-url.<region>.on.aws`, without the trailing slash the Function URL carries. */
  readonly connectUrl: string;
  /** `<connectUrl>/callback`: the redirect URI to register in Exact's App Center. */
  readonly callbackUrl: string;

  constructor(scope: Construct, id: string, props: OnboardingUrlProps) {
    super(scope, id);
    this.functionUrl = props.connect.addFunctionUrl({
      // No IAM auth: a person's browser calls it. What protects it is the onboarding flow itself:
      // /start needs a link signed with the stack's link key (15 minutes, single use), /callback
      // a signed state from that link; anything else is refused before any work.
      authType: FunctionUrlAuthType.NONE,
    });
    // The URL ends in "/"; its host is the third "/"-separated part of `https://host/`.
    const host = Fn.select(2, Fn.split("/", this.functionUrl.url));
    this.connectUrl = `https://${host}`;
    this.callbackUrl = `https://${host}${ConnectPath.Callback}`;
  }
}
