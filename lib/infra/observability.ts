import { Duration } from "aws-cdk-lib";
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IMetric,
  MathExpression,
  Metric,
  TreatMissingData,
} from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import { type IEventBus, Rule } from "aws-cdk-lib/aws-events";
import { SnsTopic } from "aws-cdk-lib/aws-events-targets";
import { PolicyStatement, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Key } from "aws-cdk-lib/aws-kms";
import { Topic } from "aws-cdk-lib/aws-sns";
import { EmailSubscription } from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import {
  ChainBusy,
  ConfigurationError,
  ExactUnavailable,
  SecretUnavailable,
  Throttled,
  TokenDecryptError,
} from "../errors.js";
import { BrokerEventType, EVENT_SOURCE } from "../events/broker-events.js";
import { INTERNAL_ERROR } from "../handlers/error-boundary.js";
import type { BrokerFunctions } from "./broker-functions.js";
import { FunctionName } from "./bundling.js";
import { METRICS_NAMESPACE } from "./names.js";

export interface ObservabilityProps {
  readonly functions: BrokerFunctions;
  /** The bus the functions publish the broker's events to. */
  readonly eventBus: IEventBus;
  /** Subscribes this address to the alerts topic (AWS sends a confirmation mail first). @default none */
  readonly alarmEmail?: string;
}

const FIVE_MINUTES = Duration.minutes(5);

/**
 * The vend errors that are the broker's or Exact's problem, not the caller's: a consumer's bad
 * input (ValidationError, ConnectionNotFound) is its own bug, and ReauthRequired has an alarm of
 * its own. ChainBusy counts because it means vends gave up waiting for a lease.
 */
const VEND_ERROR_TYPES = [
  INTERNAL_ERROR,
  new ConfigurationError("").name,
  new ExactUnavailable("").name,
  new Throttled("").name,
  new SecretUnavailable("").name,
  new TokenDecryptError("").name,
  new ChainBusy("").name,
] as const;

/**
 * Alarms, the alerts topic and the dashboard.
 *
 * ReauthRequired and RefreshTokenExpiring are events on the broker's bus, so each gets an
 * EventBridge rule that sends the event itself to the alerts topic (an operator learns which
 * connection and why), and an alarm on that rule's TriggeredRules metric (the state stays
 * visible in the console and on the dashboard). Metric filters on log lines were the other
 * option; they would tie alarms to log wording, and events are the broker's documented
 * contract (lib/events/broker-events.ts).
 */
export class Observability extends Construct {
  readonly alertsTopic: Topic;
  readonly reauthRequiredRule: Rule;
  readonly refreshTokenExpiringRule: Rule;
  /** AppRejected, UserBlocked and TokenCallsHigh events to the alerts topic. */
  readonly exactRefusalsRule: Rule;
  readonly reauthRequiredAlarm: Alarm;
  readonly refreshTokenExpiringAlarm: Alarm;
  readonly refreshFailuresAlarm: Alarm;
  readonly vendErrorsAlarm: Alarm;
  readonly healFailuresAlarm: Alarm;
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const { functions, eventBus } = props;

    // Its own key, not the token key: CloudWatch and EventBridge must be allowed to use it, and
    // the token key stays usable by the table and the functions only.
    const alertsKey = new Key(this, "AlertsKey", {
      enableKeyRotation: true,
      description: "exact-token-broker: encrypts the alerts topic",
    });
    // CloudWatch alarms publish to an encrypted topic only if the key lets them (AWS's documented
    // statement for alarm actions); EventBridge gets its grant from the SnsTopic target below.
    alertsKey.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey*"],
        resources: ["*"],
      }),
    );
    this.alertsTopic = new Topic(this, "Alerts", {
      displayName: "exact-token-broker alerts",
      masterKey: alertsKey,
      enforceSSL: true,
    });
    if (props.alarmEmail) this.alertsTopic.addSubscription(new EmailSubscription(props.alarmEmail));

    this.reauthRequiredRule = this.#eventRule(
      "ReauthRequiredEvents",
      BrokerEventType.ReauthRequired,
      eventBus,
    );
    this.refreshTokenExpiringRule = this.#eventRule(
      "RefreshTokenExpiringEvents",
      BrokerEventType.RefreshTokenExpiring,
      eventBus,
    );
    // Exact refuses an app or a user, or a chain calls far too often: one event each (per app,
    // per block, per day), sent as it is; no alarm, as nothing keeps failing in a metric.
    this.exactRefusalsRule = this.#eventRule(
      "ExactRefusalEvents",
      [BrokerEventType.AppRejected, BrokerEventType.UserBlocked, BrokerEventType.TokenCallsHigh],
      eventBus,
    );
    this.reauthRequiredAlarm = this.#alarm("ReauthRequired", {
      metric: ruleMatches(this.reauthRequiredRule, eventBus, "ReauthRequired events"),
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "A connection needs a person: the fallback login could not heal its chain (wrong password or TOTP " +
        "secret, locked account, missing login credentials, …). The event sent to this topic names the " +
        "connection and the reason; fix it, then run `exact-broker heal` or send a new connect link.",
    });
    this.refreshTokenExpiringAlarm = this.#alarm("RefreshTokenExpiring", {
      metric: ruleMatches(this.refreshTokenExpiringRule, eventBus, "RefreshTokenExpiring events"),
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "A refresh token is older than 27 days: the keep-alive refresh keeps failing and Exact expires " +
        "it at 30 days. Look at the connection's status and the refresh-worker function's logs.",
    });

    const refreshFailures = new MathExpression({
      expression: "FILL(chains, 0) + FILL(dispatches, 0) + FILL(batches, 0)",
      label: "refresh failures",
      period: FIVE_MINUTES,
      usingMetrics: {
        chains: brokerMetric("RefreshFailures", FunctionName.RefreshWorker),
        dispatches: functions.refresh.metricErrors({ period: FIVE_MINUTES }),
        batches: functions.refreshWorker.metricErrors({ period: FIVE_MINUTES }),
      },
    });
    this.refreshFailuresAlarm = this.#alarm("RefreshFailures", {
      metric: refreshFailures,
      threshold: 1,
      // One failed refresh is Exact having a bad minute (the chain backs off and is retried);
      // failures in three periods in a row are not.
      evaluationPeriods: 3,
      description:
        "Scheduled refreshes failed (a chain's refresh, a worker's batch or a dispatch run) in three 5-minute " +
        "periods in a row. Tokens still vend while they are valid; see the refresh-worker's and the refresh " +
        "function's logs for the errorType.",
    });

    const vendErrors = new MathExpression({
      expression: VEND_ERROR_TYPES.map((_, i) => `FILL(e${i}, 0)`).join(" + "),
      label: "vend errors (broker-side)",
      period: FIVE_MINUTES,
      usingMetrics: Object.fromEntries(
        VEND_ERROR_TYPES.map((errorType, i) => [
          `e${i}`,
          brokerMetric("Errors", FunctionName.TokenVend, { errorType }),
        ]),
      ),
    });
    this.vendErrorsAlarm = this.#alarm("VendErrors", {
      metric: vendErrors,
      threshold: 5,
      evaluationPeriods: 2,
      description:
        `token-vend answered at least 5 broker-side errors (${VEND_ERROR_TYPES.join(", ")}) in each of two ` +
        "5-minute periods. Consumers are not getting tokens; the dashboard's errors-by-code graph says which.",
    });

    this.healFailuresAlarm = this.#alarm("HealInvocationsFailed", {
      metric: functions.healFailures.metricApproximateNumberOfMessagesVisible({
        period: FIVE_MINUTES,
        statistic: "Maximum",
      }),
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "A fallback-login invocation crashed or timed out (it is never retried). Each message in the " +
        "heal-failures queue holds the connection ID; see fallback-login's logs, then delete the message.",
    });

    this.dashboard = this.#dashboard(functions, eventBus, vendErrors, refreshFailures);
  }

  #eventRule(id: string, types: BrokerEventType | readonly BrokerEventType[], eventBus: IEventBus): Rule {
    const detailType = typeof types === "string" ? [types] : [...types];
    return new Rule(this, id, {
      eventBus,
      description: `exact-token-broker: ${detailType.join(", ")} events to the alerts topic`,
      eventPattern: { source: [EVENT_SOURCE], detailType },
      targets: [new SnsTopic(this.alertsTopic)],
    });
  }

  #alarm(
    id: string,
    options: { metric: IMetric; threshold: number; evaluationPeriods: number; description: string },
  ): Alarm {
    const alarm = new Alarm(this, id, {
      metric: options.metric,
      threshold: options.threshold,
      evaluationPeriods: options.evaluationPeriods,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // No data means nothing happened: no events, no failures, no errors.
      treatMissingData: TreatMissingData.NOT_BREACHING,
      alarmDescription: options.description,
    });
    alarm.addAlarmAction(new SnsAction(this.alertsTopic));
    return alarm;
  }

  #dashboard(
    functions: BrokerFunctions,
    eventBus: IEventBus,
    vendErrors: IMetric,
    refreshFailures: IMetric,
  ): Dashboard {
    const vend = FunctionName.TokenVend;
    const latency = (statistic: string) =>
      brokerMetric("VendLatency", vend, {}, { statistic, label: `VendLatency ${statistic}` });
    const dashboard = new Dashboard(this, "Dashboard", { defaultInterval: Duration.hours(6) });
    dashboard.addWidgets(
      new GraphWidget({
        title: "Vends",
        left: [brokerMetric("Vends", vend)],
        right: [functions.tokenVend.metricThrottles({ period: FIVE_MINUTES, label: "throttles" })],
        width: 8,
      }),
      new GraphWidget({
        title: "Vend latency (ms)",
        left: [latency("p50"), latency("p95"), latency("p99")],
        width: 8,
      }),
      new GraphWidget({
        // Vends that waited for another invocation's refresh or login, and those that gave up.
        title: "Lease waits",
        left: [brokerMetric("LeaseWaits", vend)],
        right: [
          brokerMetric(
            "Errors",
            vend,
            { errorType: new ChainBusy("").name },
            { label: "ChainBusy (gave up)" },
          ),
        ],
        width: 8,
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({
        title: "Refreshes",
        left: [brokerMetric("Refreshes", FunctionName.RefreshWorker)],
        right: [refreshFailures],
        width: 8,
      }),
      new GraphWidget({
        title: "Heals",
        left: [
          brokerMetric("Heals", FunctionName.FallbackLogin),
          brokerMetric("HealFailures", FunctionName.FallbackLogin),
          brokerMetric("HealsSkipped", FunctionName.FallbackLogin),
        ],
        width: 8,
      }),
      new GraphWidget({
        title: "Events needing a person",
        left: [
          ruleMatches(this.reauthRequiredRule, eventBus, "ReauthRequired"),
          ruleMatches(this.refreshTokenExpiringRule, eventBus, "RefreshTokenExpiring"),
        ],
        width: 8,
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({
        title: "Errors by code (all functions)",
        left: [
          new MathExpression({
            expression: `SEARCH('{${METRICS_NAMESPACE},errorType,service} MetricName="Errors"', 'Sum', 300)`,
            label: "",
            period: FIVE_MINUTES,
          }),
        ],
        right: [vendErrors],
        width: 12,
      }),
      new AlarmStatusWidget({
        title: "Alarms",
        alarms: [
          this.reauthRequiredAlarm,
          this.refreshTokenExpiringAlarm,
          this.refreshFailuresAlarm,
          this.vendErrorsAlarm,
          this.healFailuresAlarm,
        ],
        width: 12,
      }),
    );
    return dashboard;
  }
}

/** A Powertools metric of one function (dimension `service`, plus any others it adds). */
function brokerMetric(
  metricName: string,
  service: FunctionName,
  dimensions: Record<string, string> = {},
  options: { statistic?: string; label?: string } = {},
): Metric {
  return new Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { service, ...dimensions },
    statistic: options.statistic ?? "Sum",
    period: FIVE_MINUTES,
    ...(options.label ? { label: options.label } : {}),
  });
}

/** How often a rule on a custom bus matched (AWS/Events reports it per bus and rule). */
function ruleMatches(rule: Rule, eventBus: IEventBus, label: string): Metric {
  return new Metric({
    namespace: "AWS/Events",
    metricName: "TriggeredRules",
    dimensionsMap: { EventBusName: eventBus.eventBusName, RuleName: rule.ruleName },
    statistic: "Sum",
    period: FIVE_MINUTES,
    label,
  });
}
