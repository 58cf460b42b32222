import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import { EventBus } from "aws-cdk-lib/aws-events";
import type { Grant, IGrantable } from "aws-cdk-lib/aws-iam";
import type { RetentionDays } from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { BrokerFunctions } from "./broker-functions.js";
import { BrokerSecrets } from "./broker-secrets.js";
import { ChainTableConstruct } from "./chain-table.js";
import type { EngineSettings } from "./function-settings.js";
import { Observability } from "./observability.js";
import { OnboardingUrl } from "./onboarding-url.js";
import { TokenKey } from "./token-key.js";

export interface BrokerStackProps extends StackProps {
  /**
   * Protects the chain table (every live refresh-token chain) from deletion.
   * @default true
   */
  readonly deletionProtection?: boolean;
  /**
   * Name prefix of the connections' secrets in Secrets Manager.
   * @default "exact-token-broker/connections/"
   */
  readonly connectionSecretPrefix?: string;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /**
   * Reserve concurrency for refresh, fallback-login and connect; turn off in an account whose
   * Lambda concurrency limit is still 10.
   * @default true
   */
  readonly reserveConcurrency?: boolean;
  /** Subscribes this e-mail address to the alerts topic. @default none */
  readonly alarmEmail?: string;
  /** The connect function's public URL, when a custom domain fronts it. @default its Function URL */
  readonly connectUrl?: string;
  /**
   * Engine settings (LEASE_SECONDS, HTTP_TIMEOUT_MS, LOGIN_LEASE_SECONDS) to deploy instead of the
   * defaults; the functions' timeouts follow them, and settings that break a timing relation fail
   * the synth with the reason.
   * @default EngineSettings (function-settings.ts), per field
   */
  readonly engineSettings?: Partial<EngineSettings>;
}

/**
 * The broker's deployment: a thin composition of one construct per concern. Consumers get
 * access through {@link BrokerStack.grantVend}.
 */
export class BrokerStack extends Stack {
  readonly tokenKey: TokenKey;
  readonly chains: ChainTableConstruct;
  readonly secrets: BrokerSecrets;
  readonly eventBus: EventBus;
  readonly functions: BrokerFunctions;
  readonly onboarding: OnboardingUrl;
  readonly observability: Observability;

  constructor(scope: Construct, id: string, props: BrokerStackProps = {}) {
    super(scope, id, {
      description:
        "exact-token-broker: keeps Exact Online refresh-token chains alive and vends access tokens",
      ...props,
    });
    this.tokenKey = new TokenKey(this, "TokenKey");
    this.chains = new ChainTableConstruct(this, "Chains", {
      encryptionKey: this.tokenKey.key,
      deletionProtection: props.deletionProtection ?? true,
    });
    this.secrets = new BrokerSecrets(this, "Secrets", {
      ...(props.connectionSecretPrefix ? { connectionSecretPrefix: props.connectionSecretPrefix } : {}),
    });
    this.eventBus = new EventBus(this, "Events", { description: "exact-token-broker: the broker's events" });
    this.functions = new BrokerFunctions(this, "Functions", {
      chains: this.chains,
      tokenKey: this.tokenKey,
      secrets: this.secrets,
      eventBus: this.eventBus,
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
      ...(props.reserveConcurrency === undefined ? {} : { reserveConcurrency: props.reserveConcurrency }),
      ...(props.connectUrl ? { connectUrl: props.connectUrl } : {}),
      ...(props.engineSettings ? { engineSettings: props.engineSettings } : {}),
    });
    this.onboarding = new OnboardingUrl(this, "Onboarding", { connect: this.functions.connect });
    this.observability = new Observability(this, "Observability", {
      functions: this.functions,
      eventBus: this.eventBus,
      ...(props.alarmEmail ? { alarmEmail: props.alarmEmail } : {}),
    });

    const output = (id: string, value: string, description: string) =>
      new CfnOutput(this, id, { value, description });
    output("TableName", this.chains.table.tableName, "TABLE_NAME for exact-broker against this deployment");
    output("KmsKeyArn", this.tokenKey.key.keyArn, "KMS_KEY_ARN for exact-broker against this deployment");
    output(
      "EventBusName",
      this.eventBus.eventBusName,
      "The broker's events (ChainBroken, ReauthRequired, …)",
    );
    output("TokenVendFunctionName", this.functions.tokenVend.functionName, "What consumers invoke");
    output("TokenVendFunctionArn", this.functions.tokenVend.functionArn, "What consumers invoke");
    output(
      "FallbackLoginFunctionName",
      this.functions.fallbackLogin.functionName,
      "FALLBACK_LOGIN_FUNCTION_NAME for exact-broker heal",
    );
    output("ConnectUrl", this.onboarding.connectUrl, "Base of the one-time connect links");
    output(
      "CallbackUrl",
      this.onboarding.callbackUrl,
      "Register this redirect URI for the app in Exact's App Center",
    );
    output(
      "ConnectionSecretPrefix",
      this.secrets.connectionSecretPrefix,
      "Connection secrets must be named <prefix><connection ID>",
    );
    output(
      "LinkSigningSecretArn",
      this.secrets.linkSigningKey.secretArn,
      "LINK_SIGNING_SECRET_ID for exact-broker connect",
    );
    output("AlertsTopicArn", this.observability.alertsTopic.topicArn, "Alarms and ReauthRequired events");
    output("DashboardName", this.observability.dashboard.dashboardName, "CloudWatch dashboard");
  }

  /**
   * Lets a consumer (a Lambda's role, say) invoke token-vend, and nothing more. Whoever may
   * invoke token-vend gets the access token of any connection in this stack.
   */
  grantVend(grantee: IGrantable): Grant {
    return this.functions.grantVend(grantee);
  }
}
