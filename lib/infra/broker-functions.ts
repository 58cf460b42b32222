import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import { type IEventBus, Rule, Schedule } from "aws-cdk-lib/aws-events";
import { LambdaFunction } from "aws-cdk-lib/aws-events-targets";
import { Grant, type IGrantable, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Architecture, Runtime } from "aws-cdk-lib/aws-lambda";
import { SqsDestination } from "aws-cdk-lib/aws-lambda-destinations";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { Queue, QueueEncryption } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { VendAuthorization } from "../auth/authorization-settings.js";
import type { BranchKeyStoreConstruct } from "./branch-key-store.js";
import type { BrokerSecrets } from "./broker-secrets.js";
import { cdkBundling, entryPoint, FUNCTION_NODE_OPTIONS, FunctionName, projectFiles } from "./bundling.js";
import { type ChainTableConstruct, ItemKind } from "./chain-table.js";
import {
  EngineSettings,
  FUNCTION_MEMORY_MB,
  functionTimeouts,
  RefreshWorkerEventSource,
  ReservedConcurrency,
  timingEnvironment,
} from "./function-settings.js";
import { awsSolutionsRule } from "./nag.js";
import { METRICS_NAMESPACE } from "./names.js";
import type { TokenKey } from "./token-key.js";

export interface BrokerFunctionsProps {
  readonly chains: ChainTableConstruct;
  readonly tokenKey: TokenKey;
  /** The branch key store every function that seals or opens tokens loads its branch key from. */
  readonly branchKeys: BranchKeyStoreConstruct;
  readonly secrets: BrokerSecrets;
  /** Where the broker's events (ChainBroken, ReauthRequired, …) go. */
  readonly eventBus: IEventBus;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /**
   * Reserve concurrency for refresh, fallback-login and connect (function-settings.ts). Turn it
   * off in an account whose concurrency limit is still the new-account 10: Lambda refuses any
   * reservation that leaves fewer than 10 unreserved.
   * @default true
   */
  readonly reserveConcurrency?: boolean;
  /** The connect function's public URL when a custom domain fronts it (CONNECT_URL). @default the request's host */
  readonly connectUrl?: string;
  /**
   * Engine settings to deploy instead of the defaults; the functions' timeouts follow them, and
   * settings that break a timing relation (config-timing.ts) fail the synth with the reason.
   * @default EngineSettings (function-settings.ts), per field
   */
  readonly engineSettings?: Partial<EngineSettings>;
  /** How token-vend authorizes callers (VEND_AUTHORIZATION, lib/auth/). @default perConnection */
  readonly vendAuthorization?: VendAuthorization;
  /** The value consumers sign into X-Exact-Broker-Server-ID (BROKER_SERVER_ID). */
  readonly serverId: string;
  /** false: tokens are sealed unpacked (TOKEN_PACKING=off, lib/crypto/token-cipher.ts). @default true */
  readonly tokenPacking?: boolean;
}

/**
 * The five functions (token-vend, refresh, refresh-worker, fallback-login, connect), each with
 * its own log group, its own role holding exactly the actions its code uses, and its wiring: the
 * every-minute schedule for refresh, which queues the due chains for the refresh-worker (an SQS
 * event source of bounded concurrency), asynchronous invocation without retries (and a failure
 * queue) for fallback-login.
 */
export class BrokerFunctions extends Construct {
  readonly tokenVend: NodejsFunction;
  /** The schedule's dispatcher: queues the due chains (refresh-dispatch.ts). */
  readonly refresh: NodejsFunction;
  /** Does the queued chains' work (refresh-worker.ts). */
  readonly refreshWorker: NodejsFunction;
  readonly fallbackLogin: NodejsFunction;
  readonly connect: NodejsFunction;
  /** Every-minute EventBridge rule that starts a refresh run. */
  readonly schedule: Rule;
  /** fallback-login invocations that failed (error or timeout) land here, with their connection ID. */
  readonly healFailures: Queue;
  /** Due chains, each held back until it is due; the refresh-worker's event source. */
  readonly refreshQueue: Queue;
  /** Refresh messages whose worker invocation failed three times (the overdue sweep queues the chain again anyway). */
  readonly refreshDeadLetters: Queue;

  /** The engine settings the functions are deployed with (the defaults, overridden by the props). */
  readonly engineSettings: EngineSettings;

  readonly #props: BrokerFunctionsProps;
  readonly #roles = new Map<NodejsFunction, Role>();

  constructor(scope: Construct, id: string, props: BrokerFunctionsProps) {
    super(scope, id);
    this.#props = props;
    const overrides = props.engineSettings ?? {};
    this.engineSettings = {
      leaseSeconds: overrides.leaseSeconds ?? EngineSettings.leaseSeconds,
      httpTimeoutMs: overrides.httpTimeoutMs ?? EngineSettings.httpTimeoutMs,
      loginLeaseSeconds: overrides.loginLeaseSeconds ?? EngineSettings.loginLeaseSeconds,
      ...(overrides.historyDays !== undefined ? { historyDays: overrides.historyDays } : {}),
    };
    const { chains, tokenKey, branchKeys, secrets, eventBus } = props;
    // The functions that seal or open tokens: the hierarchical keyring (lib/crypto/token-cipher.ts).
    const brokerEnv = {
      TABLE_NAME: chains.table.tableName,
      KMS_KEY_ARN: tokenKey.key.keyArn,
      ...branchKeys.environment,
      ...(props.tokenPacking === false ? { TOKEN_PACKING: "off" } : {}),
    };

    // fallback-login first: token-vend and the refresh-worker invoke it.
    this.fallbackLogin = this.#function("FallbackLogin", FunctionName.FallbackLogin, {
      ...brokerEnv,
      EVENT_BUS_NAME: eventBus.eventBusName,
    });
    this.tokenVend = this.#function("TokenVend", FunctionName.TokenVend, {
      ...brokerEnv,
      EVENT_BUS_NAME: eventBus.eventBusName,
      FALLBACK_LOGIN_FUNCTION_NAME: this.fallbackLogin.functionName,
      VEND_AUTHORIZATION: props.vendAuthorization ?? VendAuthorization.PerConnection,
      BROKER_SERVER_ID: props.serverId,
    });
    this.refreshDeadLetters = new Queue(this, "RefreshDeadLetters", {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    // No SQS3 acknowledgment: cdk-nag sees this queue named as the refresh queue's dead-letter target.
    const workerTimeout = functionTimeouts(this.engineSettings)[FunctionName.RefreshWorker];
    this.refreshQueue = new Queue(this, "RefreshQueue", {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // Lambda's advice for an SQS event source: six times the function's timeout, so a message
      // is not handed to a second invocation while the first still works on it.
      visibilityTimeout: Duration.seconds(workerTimeout.toSeconds() * 6),
      // A message an hour old is stale: its chain was found overdue and queued again long since.
      retentionPeriod: Duration.minutes(60),
      deadLetterQueue: { queue: this.refreshDeadLetters, maxReceiveCount: 3 },
    });
    this.refresh = this.#function("Refresh", FunctionName.Refresh, {
      TABLE_NAME: chains.table.tableName,
      KMS_KEY_ARN: tokenKey.key.keyArn,
      REFRESH_QUEUE_URL: this.refreshQueue.queueUrl,
    });
    this.refreshWorker = this.#function("RefreshWorker", FunctionName.RefreshWorker, {
      ...brokerEnv,
      EVENT_BUS_NAME: eventBus.eventBusName,
      FALLBACK_LOGIN_FUNCTION_NAME: this.fallbackLogin.functionName,
    });
    this.refreshWorker.addEventSource(
      new SqsEventSource(this.refreshQueue, {
        batchSize: RefreshWorkerEventSource.batchSize,
        maxConcurrency: RefreshWorkerEventSource.maxConcurrency,
        maxBatchingWindow: Duration.seconds(RefreshWorkerEventSource.maxBatchingWindowSeconds),
      }),
    );
    // No EVENT_BUS_NAME: onboarding raises no events. No FALLBACK_LOGIN_FUNCTION_NAME: it never heals.
    this.connect = this.#function("Connect", FunctionName.Connect, {
      ...brokerEnv,
      LINK_SIGNING_SECRET_ID: secrets.linkSigningKey.secretArn,
      ...(props.connectUrl ? { CONNECT_URL: props.connectUrl } : {}),
    });

    // Per function: exactly the calls its code can make, per kind of item (the key's prefix,
    // lib/chain/table-definition.ts); test/infra/table-access.test.ts runs the doors and checks
    // every call they make against these statements.
    const { Connection, Guard, Nonce, TotpClaim, App, History } = ItemKind;
    const [get, put, update, remove] = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
    ] as const;
    // Every function but refresh, which only finds due chains and queues them (claiming the late ones).
    const all = [this.tokenVend, this.refreshWorker, this.fallbackLogin, this.connect];
    for (const fn of all) {
      // Every door reads and leases its chain (UpdateItem: acquire, renew, commit, release; a
      // hand-over writes to the connection that holds the user) and its app's shared state.
      chains.grantItems(fn, [Connection, App], get, update);
      // An identity check claims, takes over or releases the (app, user) guard: a seed's in
      // connect, a login's in fallback-login, a pending one wherever a door finishes it.
      chains.grantItems(fn, [Guard], get, put, remove);
      // The history item of each generation a lease reached: one idempotent UpdateItem.
      chains.grantItems(fn, [History], update);
    }
    // refresh: "which chains are due" on the sparse index, its cursor, the claim of each late one (UpdateItem), the queue.
    chains.grantDueQuery(this.refresh);
    chains.grantItems(this.refresh, [Connection], update);
    chains.grantItems(this.refresh, [ItemKind.Dispatch], get, update);
    // SendMessageBatch needs sqs:SendMessage alone; the queue URL comes from the environment, so
    // not grantSendMessages' GetQueueUrl and GetQueueAttributes.
    Grant.addToPrincipal({
      grantee: this.refresh,
      actions: ["sqs:SendMessage"],
      resourceArns: [this.refreshQueue.queueArn],
    });
    tokenKey.grantTableUse(this.refresh);
    // fallback-login: only logins claim TOTP steps and count the Exact user's failed logins.
    chains.grantItems(this.fallbackLogin, [TotpClaim], get, update);
    // connect: the single-use markers of its links (claimed, and looked at before a page is shown).
    chains.grantItems(this.connect, [Nonce], get, put);
    // token-vend: who may get which connection (lib/auth/grant-store.ts); STS needs no permission.
    chains.grantItems(this.tokenVend, [ItemKind.Grants], get);

    for (const fn of all) {
      tokenKey.grantKeyring(fn);
      branchKeys.grantLoad(fn);
      // Created before any function that seals with it is created or updated with its settings.
      fn.node.addDependency(branchKeys.branchKey);
      // Every one of them makes token calls (fallback-login: a heal's code exchange).
      secrets.grantReadClientSecrets(this.roleOf(fn));
    }
    // Only fallback-login logs in as the Exact user: no other role can read a password or TOTP secret.
    secrets.grantReadLoginCredentials(this.roleOf(this.fallbackLogin));
    secrets.grantReadLinkKey(this.connect);
    for (const fn of [this.tokenVend, this.refreshWorker, this.fallbackLogin]) {
      Grant.addToPrincipal({
        grantee: fn,
        actions: ["events:PutEvents"],
        resourceArns: [eventBus.eventBusArn],
      });
    }
    // Heals run in fallback-login: vends and the refresh-worker that find a chain broken start one.
    for (const fn of [this.tokenVend, this.refreshWorker]) {
      Grant.addToPrincipal({
        grantee: fn,
        actions: ["lambda:InvokeFunction"],
        resourceArns: [this.fallbackLogin.functionArn],
      });
    }

    this.healFailures = new Queue(this, "HealFailures", {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.healFailures).acknowledge({
      id: awsSolutionsRule("SQS3"),
      reason:
        "This queue is itself a dead-letter sink: the on-failure destination of fallback-login's " +
        "asynchronous invocations. Nothing consumes it, so a message cannot fail again; an operator reads " +
        "and deletes it, and the HealInvocationsFailed alarm watches it.",
    });
    this.fallbackLogin.configureAsyncInvoke({
      // Never retried by Lambda: a login retried within minutes spends Exact's login and error
      // budget (invariant 7). The engine decides when to try again: the next vend or refresh run
      // that finds the chain still broken triggers a new heal.
      retryAttempts: 0,
      // A trigger still queued after an hour (throttled behind the reservation) is stale: newer
      // vends and refresh runs have triggered their own.
      maxEventAge: Duration.hours(1),
      onFailure: new SqsDestination(this.healFailures),
    });

    this.refresh.configureAsyncInvoke({
      // A failed or late run is superseded by the next minute's tick, which queues from where the
      // last successful one stopped (refresh-dispatch.ts's cursor); retrying would only overlap it.
      retryAttempts: 0,
      maxEventAge: Duration.minutes(1),
    });
    this.schedule = new Rule(this, "RefreshSchedule", {
      description: "exact-token-broker: starts a refresh run every minute",
      schedule: Schedule.rate(Duration.minutes(1)),
      // EventBridge retries only a failed hand-over to Lambda (the asynchronous Invoke call), and
      // only within the minute: after that the next tick is due anyway.
      targets: [new LambdaFunction(this.refresh, { retryAttempts: 2, maxEventAge: Duration.minutes(1) })],
    });
  }

  /** `lambda:InvokeFunction` on token-vend, and nothing more: what a consumer needs. */
  grantVend(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({
      grantee,
      actions: ["lambda:InvokeFunction"],
      resourceArns: [this.tokenVend.functionArn],
    });
  }

  /** The role a function runs with (one per function). */
  roleOf(fn: NodejsFunction): Role {
    const role = this.#roles.get(fn);
    if (!role) throw new Error(`${fn.node.path} is not one of the broker's functions`);
    return role;
  }

  #function(id: string, name: FunctionName, environment: Record<string, string>): NodejsFunction {
    const logGroup = new LogGroup(this, `${id}Logs`, {
      retention: this.#props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // An own role per function instead of AWSLambdaBasicExecutionRole (logs:* on every group):
    // it may write to its own log group and do what the grants above add, nothing else.
    const role = new Role(this, `${id}Role`, {
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
      description: `exact-token-broker ${name}`,
    });
    logGroup.grantWrite(role);
    const reserved = this.#props.reserveConcurrency === false ? undefined : ReservedConcurrency[name];
    const timeout = functionTimeouts(this.engineSettings)[name];
    const fn = new NodejsFunction(this, id, {
      description: `exact-token-broker ${name}`,
      entry: entryPoint(name),
      handler: "handler",
      ...projectFiles(),
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: FUNCTION_MEMORY_MB,
      timeout,
      role,
      logGroup,
      bundling: cdkBundling(),
      ...(reserved === undefined ? {} : { reservedConcurrentExecutions: reserved }),
      environment: {
        ...environment,
        // Throws, failing the synth, if these settings break a timing relation the engine checks at start.
        ...timingEnvironment(name, this.engineSettings, timeout),
        POWERTOOLS_SERVICE_NAME: name,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        NODE_OPTIONS: FUNCTION_NODE_OPTIONS,
      },
    });
    this.#roles.set(fn, role);
    return fn;
  }
}
