import { Annotations, Stack } from "aws-cdk-lib";
import { EventBus } from "aws-cdk-lib/aws-events";
import type { Grant, IGrantable } from "aws-cdk-lib/aws-iam";
import type { RetentionDays } from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { VendAuthorization } from "../auth/authorization-settings.js";
import { BranchKeyStoreConstruct } from "./branch-key-store.js";
import { BrokerFunctions } from "./broker-functions.js";
import { BrokerSecrets } from "./broker-secrets.js";
import { ChainTableConstruct } from "./chain-table.js";
import type { EngineSettings } from "./function-settings.js";
import { Observability } from "./observability.js";
import { OnboardingUrl } from "./onboarding-url.js";
import { RATE_BUDGET_TABLE_ENV, RateBudgetTableConstruct } from "./rate-budget-table.js";
import { TokenKey } from "./token-key.js";
import { type VendGrantOptions, VendGrants } from "./vend-grants.js";

export interface ExactTokenBrokerProps {
  /**
   * Protects the chain table (every live refresh-token chain) and the branch key store (without
   * which no token in it opens) from deletion.
   * @default true
   */
  readonly deletionProtection?: boolean;
  /**
   * Lets token-vend, refresh-worker, fallback-login and connect read combined secrets (client
   * secret and login credentials in one, `exact-token-broker/connections/*`) while a deployment
   * made before the split moves its connections (`exact-broker connection set-secret`; README,
   * "Trust boundary").
   * @default false
   */
  readonly combinedSecrets?: boolean;
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
  /**
   * Who gets which connection from token-vend. `perConnection`: only the connections granted to
   * the caller's verified AWS identity (grantVend's `connections`, `exact-broker grant`).
   * `stackWide`: whoever may invoke token-vend gets every connection, as before issue 10; for a
   * deployment's migration period (README, "Moving from stackWide"). Context: `-c vendAuthorization=stackWide`.
   * @default "perConnection"
   */
  readonly vendAuthorization?: VendAuthorization;
  /**
   * The value consumers sign into the `X-Exact-Broker-Server-ID` header (their
   * TOKEN_VEND_SERVER_ID), so an identity signed for this broker is refused anywhere else. Give
   * each broker its own when a stack holds more than one.
   * @default "exact-token-broker:<account>:<region>:<stack name>"
   */
  readonly serverId?: string;
  /**
   * Whether tokens are compressed before they are sealed (a quarter less to store and to pay
   * for: lib/crypto/token-packing.ts). Releases before packing cannot read a packed token: when
   * upgrading from one, deploy once with `false` (every function then reads packed tokens and
   * writes none), then again without it. Tokens open either way. @default true
   */
  readonly tokenPacking?: boolean;
}

/**
 * The whole broker, for a team's own CDK stack: the chain table and its key, the branch key
 * store (tokens are sealed with the hierarchical keyring), the secrets, the event bus, the five
 * functions and the refresh queue, the connect URL, alarms and dashboard, the consumers' shared
 * rate budget table, one construct per concern. Consumers get access through
 * {@link ExactTokenBroker.grantVend}. It adds no stack outputs: `addBrokerOutputs`
 * (broker-outputs.ts) adds the ones the bundled app has.
 *
 *   const broker = new ExactTokenBroker(this, "Broker", { alarmEmail: "ops@example.com" });
 *   broker.grantVend(reportingFn, { connections: ["acme"] });
 */
export class ExactTokenBroker extends Construct {
  readonly tokenKey: TokenKey;
  readonly chains: ChainTableConstruct;
  /**
   * The branch key store and the stack's branch key, created at deploy. Tokens sealed under it
   * open only with it: its table must never be deleted, nor its branch key ID changed.
   */
  readonly branchKeys: BranchKeyStoreConstruct;
  readonly secrets: BrokerSecrets;
  readonly eventBus: EventBus;
  readonly functions: BrokerFunctions;
  readonly onboarding: OnboardingUrl;
  readonly observability: Observability;
  /**
   * The consumers' shared rate budget (exact-token-broker/rate-budget), in a table of its own:
   * the broker's functions never touch it, and grantVend gives consumers nothing else to write.
   */
  readonly rateBudget: RateBudgetTableConstruct;
  /** BROKER_SERVER_ID: what consumers set as TOKEN_VEND_SERVER_ID. */
  readonly serverId: string;

  /**
   * @throws Error (at synth) when `engineSettings` break a timing relation the functions check
   *   at start, naming the function and the setting to raise, or for a `vendAuthorization` that
   *   token-vend would refuse at start
   */
  constructor(scope: Construct, id: string, props: ExactTokenBrokerProps = {}) {
    super(scope, id);
    const modes: readonly string[] = Object.values(VendAuthorization);
    if (props.vendAuthorization !== undefined && !modes.includes(props.vendAuthorization)) {
      throw new Error(
        `vendAuthorization must be one of ${modes.join(", ")}, got "${props.vendAuthorization}"`,
      );
    }
    const stack = Stack.of(this);
    this.serverId =
      props.serverId ?? `exact-token-broker:${stack.account}:${stack.region}:${stack.stackName}`;
    this.tokenKey = new TokenKey(this, "TokenKey");
    this.chains = new ChainTableConstruct(this, "Chains", {
      encryptionKey: this.tokenKey.key,
      deletionProtection: props.deletionProtection ?? true,
    });
    this.branchKeys = new BranchKeyStoreConstruct(this, "BranchKeys", {
      key: this.tokenKey.key,
      deletionProtection: props.deletionProtection ?? true,
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
    });
    this.secrets = new BrokerSecrets(this, "Secrets", {
      ...(props.combinedSecrets === undefined ? {} : { combinedSecrets: props.combinedSecrets }),
    });
    this.eventBus = new EventBus(this, "Events", { description: "exact-token-broker: the broker's events" });
    this.functions = new BrokerFunctions(this, "Functions", {
      chains: this.chains,
      tokenKey: this.tokenKey,
      branchKeys: this.branchKeys,
      secrets: this.secrets,
      eventBus: this.eventBus,
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
      ...(props.reserveConcurrency === undefined ? {} : { reserveConcurrency: props.reserveConcurrency }),
      ...(props.connectUrl ? { connectUrl: props.connectUrl } : {}),
      ...(props.engineSettings ? { engineSettings: props.engineSettings } : {}),
      ...(props.vendAuthorization ? { vendAuthorization: props.vendAuthorization } : {}),
      ...(props.tokenPacking === undefined ? {} : { tokenPacking: props.tokenPacking }),
      serverId: this.serverId,
    });
    this.onboarding = new OnboardingUrl(this, "Onboarding", { connect: this.functions.connect });
    warnOnUpgradeDefaults(this, props);
    this.observability = new Observability(this, "Observability", {
      functions: this.functions,
      eventBus: this.eventBus,
      ...(props.alarmEmail ? { alarmEmail: props.alarmEmail } : {}),
    });
    this.rateBudget = new RateBudgetTableConstruct(this, "RateBudget");
  }

  /**
   * Lets a consumer (a Lambda function, a role, a user) invoke token-vend, and writes its grants:
   * `{ connections: ["acme"] }` lets token-vend serve it those connections, `{ allConnections: true }`
   * every one (the only way to grant everything). The grants are written at deploy by a custom
   * resource in the grantee's stack (lib/infra/vend-grants.ts) and removed with it; a role is
   * granted by account and role name (STS drops a role's path). Without options: the invoke
   * permission only, and `exact-broker grant` grants connections. Under `stackWide`, whoever may
   * invoke gets every connection; the grants are written all the same, ready for `perConnection`.
   *
   * Always, with or without options: the shared rate budget, `dynamodb:GetItem` and
   * `dynamodb:UpdateItem` on the budget's items in its own table
   * ({@link RateBudgetTableConstruct.grantConsumer}); and on a Lambda function, env
   * `RATE_BUDGET_TABLE_NAME`, which makes the client's module functions (`exactFetch`,
   * `exactPages`) pace their calls with it. Nothing on the chain table.
   *
   * @returns the grants of the invoke permission and of the rate budget, combined
   * @throws Error (at synth) for an invalid connection ID, both options at once, or grants for a
   *   grantee that is not a role or user
   */
  grantVend(grantee: IGrantable, options: VendGrantOptions = {}): Grant {
    const grant = this.functions.grantVend(grantee).combine(this.rateBudget.grantConsumer(grantee));
    if (isLambdaFunction(grantee))
      grantee.addEnvironment(RATE_BUDGET_TABLE_ENV, this.rateBudget.table.tableName);
    if ((options.connections?.length ?? 0) > 0 || options.allConnections) {
      if (!Construct.isConstruct(grantee))
        throw new Error("grantVend with connections needs a construct (a function, role or user) as grantee");
      VendGrants.of({ table: this.chains.table, key: this.tokenKey.key }, grantee).add(options);
    }
    return grant;
  }
}

/**
 * A Lambda function (`lambda.Function`, `NodejsFunction`, …), told by what grantVend calls on it:
 * an app may load its own copy of aws-cdk-lib, whose classes `instanceof` does not know. An alias
 * or a version (no `addEnvironment`) gets no environment: set it on its function.
 */
function isLambdaFunction(
  grantee: IGrantable,
): grantee is IGrantable & { addEnvironment(key: string, value: string): unknown } {
  const candidate = grantee as Partial<{ addEnvironment: unknown; functionArn: unknown }>;
  return typeof candidate.addEnvironment === "function" && candidate.functionArn !== undefined;
}

/**
 * A deployment made before issue 10 that is upgraded without choosing gets the strict defaults:
 * its consumers' vends are refused (AccessDenied) until granted, and its combined secrets are
 * unreadable. The synth cannot tell a new broker from an old one, so it says so, once per setting
 * left to its default (`cdk deploy` prints the warnings; `--strict` makes them fail the synth).
 */
function warnOnUpgradeDefaults(broker: Construct, props: ExactTokenBrokerProps): void {
  if (props.vendAuthorization === undefined) {
    Annotations.of(broker).addWarningV2(
      "exact-token-broker:vendAuthorization",
      "vendAuthorization defaults to perConnection: token-vend serves only callers granted a connection. " +
        "Upgrading a deployment made before per-connection grants? Deploy with vendAuthorization stackWide " +
        "(the bundled app: -c vendAuthorization=stackWide) until its consumers are granted (README, Moving from " +
        "stackWide); set it explicitly to silence this.",
    );
  }
  if (props.combinedSecrets === undefined) {
    Annotations.of(broker).addWarningV2(
      "exact-token-broker:combinedSecrets",
      "combinedSecrets defaults to false: no function can read exact-token-broker/connections/* secrets. " +
        "Upgrading a deployment whose connections still use combined secrets? Deploy with combinedSecrets true " +
        "(the bundled app: -c combinedSecrets=true) until they are moved (README, Trust boundary); set it " +
        "explicitly to silence this.",
    );
  }
}
