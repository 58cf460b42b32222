import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, type CfnElement } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import type { IConstruct } from "constructs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChainTable } from "../../lib/chain/table-definition.js";
import { BranchKeyTable, DEFAULT_BRANCH_KEY_ID } from "../../lib/crypto/branch-key-store.js";
import { BrokerStack } from "../../lib/infra/broker-stack.js";
import { buildBundle } from "../../lib/infra/build-bundles.js";
import { BUNDLE, ESM_REQUIRE_SHIM, FUNCTION_NAMES, FunctionName } from "../../lib/infra/bundling.js";
import { EngineSettings, functionTimeouts, ReservedConcurrency } from "../../lib/infra/function-settings.js";
import { CLIENT_SECRET_PREFIX, LOGIN_SECRET_PREFIX, METRICS_NAMESPACE } from "../../lib/infra/names.js";

/** A string only the login driver contains (its One Exact Identity page handling). */
const LOGIN_DRIVER_MARKER = "SelfAsserted";

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

/** The stack as `cdk deploy` builds it: real bundling (esbuild), synthesized once for the file. */
let app: App;
let stack: BrokerStack;
let template: Template;
let open: Template;
let tmp: string;

const logicalId = (construct: IConstruct): string =>
  stack.getLogicalId(construct.node.defaultChild as CfnElement);

function functionOf(name: FunctionName) {
  const fns = stack.functions;
  return {
    [FunctionName.TokenVend]: fns.tokenVend,
    [FunctionName.Refresh]: fns.refresh,
    [FunctionName.RefreshWorker]: fns.refreshWorker,
    [FunctionName.FallbackLogin]: fns.fallbackLogin,
    [FunctionName.Connect]: fns.connect,
  }[name];
}

/** A resource's properties in the synthesized template, by logical ID. */
function propertiesOf(id: string): Record<string, unknown> {
  const resource = (template.toJSON().Resources as Resources)[id];
  if (!resource) throw new Error(`no resource ${id} in the template`);
  return resource.Properties;
}

/** The directory of a function's bundled asset in the cloud assembly. */
function assetDir(name: FunctionName | IConstruct): string {
  const fn = typeof name === "string" ? functionOf(name) : name;
  const key = (propertiesOf(logicalId(fn)).Code as { S3Key: string }).S3Key;
  return join(app.outdir, `asset.${key.replace(/\.zip$/, "")}`);
}

/**
 * An app that skips bundling, for stacks whose assets no test reads. CDK's asset cache is per
 * output directory, so every bundled app pays its own esbuild runs (about 10 s on two cores).
 */
const unbundledApp = () => new App({ context: { "aws:cdk:bundling-stacks": [] } });

beforeAll(() => {
  app = new App();
  stack = new BrokerStack(app, "Broker");
  template = Template.fromStack(stack);
  open = Template.fromStack(
    new BrokerStack(unbundledApp(), "Open", { deletionProtection: false, reserveConcurrency: false }),
  );
  tmp = mkdtempSync(join(tmpdir(), "broker-stack-test-"));
}, 120_000);

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe("BrokerStack", () => {
  describe("upgrade defaults", () => {
    const upgradeWarning = (setting: string) => Match.stringLikeRegexp(`^${setting} defaults to .*Upgrading`);

    it("warns at synth about each strict default left unchosen, which an older deployment must override", () => {
      const annotations = Annotations.fromStack(stack);
      // On the broker construct (ID "Default": the stack's resources keep their logical IDs).
      annotations.hasWarning("/Broker/Default", upgradeWarning("vendAuthorization"));
      annotations.hasWarning("/Broker/Default", upgradeWarning("combinedSecrets"));
    });

    it("says nothing once both are chosen, whichever way", () => {
      const chosen = new BrokerStack(unbundledApp(), "Chosen", {
        vendAuthorization: "perConnection",
        combinedSecrets: false,
      });
      const annotations = Annotations.fromStack(chosen);
      annotations.hasNoWarning("*", upgradeWarning("vendAuthorization"));
      annotations.hasNoWarning("*", upgradeWarning("combinedSecrets"));
    });
  });

  describe("chain table", () => {
    it("is built from the CLI's table definition: on-demand, PITR, CMK, TTL, the sparse index", () => {
      // The chain table, the branch key store and the consumers' rate budget table
      // (test/infra/rate-budget-table.test.ts).
      template.resourceCountIs("AWS::DynamoDB::Table", 3);
      template.hasResourceProperties("AWS::DynamoDB::Table", {
        KeySchema: [{ AttributeName: ChainTable.partitionKey, KeyType: "HASH" }],
        BillingMode: "PAY_PER_REQUEST",
        DeletionProtectionEnabled: true,
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: {
          SSEEnabled: true,
          SSEType: "KMS",
          KMSMasterKeyId: { "Fn::GetAtt": [logicalId(stack.tokenKey.key), "Arn"] },
        },
        TimeToLiveSpecification: { AttributeName: ChainTable.ttlAttribute, Enabled: true },
        GlobalSecondaryIndexes: [
          {
            IndexName: ChainTable.dueIndex.name,
            KeySchema: [
              { AttributeName: ChainTable.dueIndex.partitionKey, KeyType: "HASH" },
              { AttributeName: ChainTable.dueIndex.sortKey, KeyType: "RANGE" },
            ],
            Projection: { ProjectionType: "KEYS_ONLY" },
          },
        ],
      });
    });

    it("is retained and deletion-protected unless protection is turned off", () => {
      template.hasResource("AWS::DynamoDB::Table", {
        DeletionPolicy: "Retain",
        UpdateReplacePolicy: "Retain",
      });
      open.hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Delete" });
      open.hasResourceProperties("AWS::DynamoDB::Table", { DeletionProtectionEnabled: false });
    });
  });

  describe("branch key store", () => {
    it("has the Encryption SDK's key schema: on-demand, PITR, protected, DynamoDB's own encryption", () => {
      expect(propertiesOf(logicalId(stack.branchKeys.table))).toEqual({
        KeySchema: [
          { AttributeName: BranchKeyTable.partitionKey, KeyType: "HASH" },
          { AttributeName: BranchKeyTable.sortKey, KeyType: "RANGE" },
        ],
        AttributeDefinitions: [
          { AttributeName: BranchKeyTable.partitionKey, AttributeType: "S" },
          { AttributeName: BranchKeyTable.sortKey, AttributeType: "S" },
        ],
        BillingMode: "PAY_PER_REQUEST",
        DeletionProtectionEnabled: true,
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        // SSE "disabled" is DynamoDB's AWS-owned key (every table is encrypted at rest): the items'
        // branch keys are wrapped by the token key already.
        SSESpecification: { SSEEnabled: false },
      });
      template.hasResource("AWS::DynamoDB::Table", {
        Properties: Match.objectLike({
          KeySchema: Match.arrayWith([Match.objectLike({ KeyType: "RANGE" })]),
        }),
        DeletionPolicy: "Retain",
        UpdateReplacePolicy: "Retain",
      });
      open.hasResource("AWS::DynamoDB::Table", {
        Properties: Match.objectLike({
          DeletionProtectionEnabled: false,
          KeySchema: Match.arrayWith([Match.objectLike({ KeyType: "RANGE" })]),
        }),
        DeletionPolicy: "Delete",
      });
    });

    it("creates the branch key at deploy, before any function that seals or opens tokens", () => {
      const keys = stack.branchKeys;
      template.resourceCountIs("Custom::ExactBrokerBranchKey", 1);
      template.hasResourceProperties("Custom::ExactBrokerBranchKey", {
        ServiceToken: {
          "Fn::GetAtt": [Match.stringLikeRegexp("^BranchKeysProviderframeworkonEvent"), "Arn"],
        },
        TableName: { Ref: logicalId(keys.table) },
        KmsKeyArn: { "Fn::GetAtt": [logicalId(stack.tokenKey.key), "Arn"] },
        BranchKeyId: DEFAULT_BRANCH_KEY_ID,
      });
      const dependsOn = (name: FunctionName): unknown =>
        (template.toJSON().Resources as Record<string, { DependsOn?: string[] }>)[logicalId(functionOf(name))]
          ?.DependsOn ?? [];
      for (const name of ["token-vend", "refresh-worker", "fallback-login", "connect"] as const) {
        expect(dependsOn(name), name).toContain(logicalId(keys.branchKey));
      }
      // The dispatcher opens no token.
      expect(dependsOn("refresh")).not.toContain(logicalId(keys.branchKey));
    });

    it("outputs the key store's table and the branch key ID for exact-broker", () => {
      template.hasOutput("BranchKeyStoreTableName", { Value: { Ref: logicalId(stack.branchKeys.table) } });
      template.hasOutput("BranchKeyId", { Value: DEFAULT_BRANCH_KEY_ID });
    });
  });

  describe("keys", () => {
    it("has a rotating token key and a rotating alerts key, nothing else", () => {
      template.resourceCountIs("AWS::KMS::Key", 2);
      template.allResourcesProperties("AWS::KMS::Key", { EnableKeyRotation: true });
    });

    it("lets only CloudWatch and EventBridge use the alerts key, besides the account", () => {
      template.hasResourceProperties("AWS::KMS::Key", {
        Description: Match.stringLikeRegexp("alerts"),
        KeyPolicy: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Principal: { Service: "cloudwatch.amazonaws.com" },
              Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
            }),
            Match.objectLike({
              Principal: { Service: "events.amazonaws.com" },
              Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
            }),
          ]),
        },
      });
      const statements = (
        propertiesOf(logicalId(stack.tokenKey.key)).KeyPolicy as { Statement: Array<{ Principal: unknown }> }
      ).Statement;
      // The token key's policy only delegates to the account's IAM: functions get it through their roles.
      expect(statements.map((s) => s.Principal)).toEqual([
        {
          AWS: {
            "Fn::Join": [
              "",
              ["arn:", { Ref: "AWS::Partition" }, ":iam::", { Ref: "AWS::AccountId" }, ":root"],
            ],
          },
        },
      ]);
    });
  });

  describe("functions", () => {
    it("deploys exactly the five functions, besides the branch key setup and its Provider framework function", () => {
      template.resourceCountIs("AWS::Lambda::Function", 7);
      expect(FUNCTION_NAMES).toEqual([
        "token-vend",
        "refresh",
        "refresh-worker",
        "fallback-login",
        "connect",
      ]);
    });

    it.each(FUNCTION_NAMES)(
      "%s: arm64, Node.js 24, its timeout, its own log group, Powertools settings",
      (name) => {
        const fn = functionOf(name);
        const props = propertiesOf(logicalId(fn));
        expect(props).toMatchObject({
          Handler: "index.handler",
          Runtime: "nodejs24.x",
          Architectures: ["arm64"],
          MemorySize: 512,
          Timeout: functionTimeouts(EngineSettings)[name].toSeconds(),
          LoggingConfig: {
            LogGroup: { Ref: logicalId(fn.logGroup) },
          },
          Environment: {
            Variables: expect.objectContaining({
              POWERTOOLS_SERVICE_NAME: name,
              POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
              NODE_OPTIONS: "--enable-source-maps",
              TABLE_NAME: { Ref: logicalId(stack.chains.table) },
              KMS_KEY_ARN: { "Fn::GetAtt": [logicalId(stack.tokenKey.key), "Arn"] },
              LEASE_SECONDS: String(EngineSettings.leaseSeconds),
              HTTP_TIMEOUT_MS: String(EngineSettings.httpTimeoutMs),
              LOGIN_LEASE_SECONDS: String(EngineSettings.loginLeaseSeconds),
              FUNCTION_TIMEOUT_SECONDS: String(functionTimeouts(EngineSettings)[name].toSeconds()),
              BROKER_FUNCTION: name,
            }),
          },
        });
      },
    );

    it("gives each function the lease it holds plus 5 s, the refresh-worker its 30 s window wait too, the dispatcher 60 s", () => {
      const timeouts = functionTimeouts(EngineSettings);
      expect(Object.fromEntries(FUNCTION_NAMES.map((n) => [n, timeouts[n].toSeconds()]))).toEqual({
        "token-vend": 25,
        refresh: 60,
        "refresh-worker": 55,
        "fallback-login": 125,
        connect: 25,
      });
    });

    it("gives each function the environment its code reads, and no more", () => {
      const env = (name: FunctionName) =>
        Object.keys(
          (propertiesOf(logicalId(functionOf(name))).Environment as { Variables: Record<string, unknown> })
            .Variables,
        ).sort();
      const common = [
        "BROKER_FUNCTION",
        "FUNCTION_TIMEOUT_SECONDS",
        "HISTORY_DAYS",
        "HTTP_TIMEOUT_MS",
        "KMS_KEY_ARN",
        "LEASE_SECONDS",
        "LOGIN_LEASE_SECONDS",
        "NODE_OPTIONS",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_SERVICE_NAME",
        "TABLE_NAME",
      ];
      // Every function that seals or opens tokens: the hierarchical keyring's branch key.
      const sealing = [...common, "BRANCH_KEY_ID", "BRANCH_KEY_STORE_TABLE_NAME"];
      expect(env("token-vend")).toEqual(
        [
          ...sealing,
          "EVENT_BUS_NAME",
          "FALLBACK_LOGIN_FUNCTION_NAME",
          "VEND_AUTHORIZATION",
          "BROKER_SERVER_ID",
        ].sort(),
      );
      // The dispatcher: the table (and its key's ARN, which the engine's start requires) and the queue.
      expect(env("refresh")).toEqual([...common, "REFRESH_QUEUE_URL"].sort());
      expect(env("refresh-worker")).toEqual(
        [...sealing, "EVENT_BUS_NAME", "FALLBACK_LOGIN_FUNCTION_NAME"].sort(),
      );
      expect(env("fallback-login")).toEqual([...sealing, "EVENT_BUS_NAME"].sort());
      expect(env("connect")).toEqual([...sealing, "LINK_SIGNING_SECRET_ID"].sort());
      template.hasResourceProperties("AWS::Lambda::Function", {
        Environment: {
          Variables: Match.objectLike({
            POWERTOOLS_SERVICE_NAME: "token-vend",
            FALLBACK_LOGIN_FUNCTION_NAME: { Ref: logicalId(stack.functions.fallbackLogin) },
            EVENT_BUS_NAME: { Ref: logicalId(stack.eventBus) },
            BRANCH_KEY_STORE_TABLE_NAME: { Ref: logicalId(stack.branchKeys.table) },
            BRANCH_KEY_ID: DEFAULT_BRANCH_KEY_ID,
          }),
        },
      });
      template.hasResourceProperties("AWS::Lambda::Function", {
        Environment: {
          Variables: Match.objectLike({
            POWERTOOLS_SERVICE_NAME: "refresh",
            REFRESH_QUEUE_URL: { Ref: logicalId(stack.functions.refreshQueue) },
          }),
        },
      });
      template.hasResourceProperties("AWS::Lambda::Function", {
        Environment: {
          Variables: Match.objectLike({
            POWERTOOLS_SERVICE_NAME: "refresh-worker",
            FALLBACK_LOGIN_FUNCTION_NAME: { Ref: logicalId(stack.functions.fallbackLogin) },
            EVENT_BUS_NAME: { Ref: logicalId(stack.eventBus) },
          }),
        },
      });
      template.hasResourceProperties("AWS::Lambda::Function", {
        Environment: {
          Variables: Match.objectLike({
            POWERTOOLS_SERVICE_NAME: "connect",
            LINK_SIGNING_SECRET_ID: { Ref: logicalId(stack.secrets.linkSigningKey) },
          }),
        },
      });
    });

    it("reserves concurrency for refresh, fallback-login and connect only, unless turned off", () => {
      for (const name of FUNCTION_NAMES) {
        const props = propertiesOf(logicalId(functionOf(name)));
        expect(props.ReservedConcurrentExecutions, name).toBe(ReservedConcurrency[name]);
      }
      expect(ReservedConcurrency).toEqual({ refresh: 2, "fallback-login": 2, connect: 2 });
      // token-vend is the hot path; the refresh-worker is bounded by its event source's MaxConcurrency.
      expect(ReservedConcurrency["token-vend"]).toBeUndefined();
      expect(ReservedConcurrency["refresh-worker"]).toBeUndefined();
      for (const fn of Object.values(open.findResources("AWS::Lambda::Function"))) {
        expect(fn.Properties.ReservedConcurrentExecutions).toBeUndefined();
      }
    });

    it("keeps every function's logs for a month in its own log group", () => {
      // The five, the branch key setup's and its Provider framework function's.
      template.resourceCountIs("AWS::Logs::LogGroup", 7);
      template.allResourcesProperties("AWS::Logs::LogGroup", { RetentionInDays: 30 });
    });

    it("runs refresh every minute, without retries that would overlap the next tick", () => {
      template.hasResourceProperties("AWS::Events::Rule", {
        ScheduleExpression: "rate(1 minute)",
        Targets: [
          Match.objectLike({
            Arn: { "Fn::GetAtt": [logicalId(stack.functions.refresh), "Arn"] },
            RetryPolicy: { MaximumEventAgeInSeconds: 60, MaximumRetryAttempts: 2 },
          }),
        ],
      });
      template.hasResourceProperties("AWS::Lambda::EventInvokeConfig", {
        FunctionName: { Ref: logicalId(stack.functions.refresh) },
        MaximumRetryAttempts: 0,
        MaximumEventAgeInSeconds: 60,
      });
    });

    it("invokes fallback-login asynchronously with retries off and failures to an encrypted queue", () => {
      template.hasResourceProperties("AWS::Lambda::EventInvokeConfig", {
        FunctionName: { Ref: logicalId(stack.functions.fallbackLogin) },
        MaximumRetryAttempts: 0,
        DestinationConfig: {
          OnFailure: { Destination: { "Fn::GetAtt": [logicalId(stack.functions.healFailures), "Arn"] } },
        },
      });
      expect(propertiesOf(logicalId(stack.functions.healFailures))).toEqual({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 14 * 24 * 3600,
      });
    });

    it("queues the due chains for the refresh-worker: encrypted, an hour's retention, six worker timeouts' visibility, a DLQ after 3 receives", () => {
      const fns = stack.functions;
      const workerTimeout = functionTimeouts(EngineSettings)["refresh-worker"].toSeconds();
      expect(propertiesOf(logicalId(fns.refreshQueue))).toEqual({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 3600,
        VisibilityTimeout: 6 * workerTimeout,
        RedrivePolicy: {
          deadLetterTargetArn: { "Fn::GetAtt": [logicalId(fns.refreshDeadLetters), "Arn"] },
          maxReceiveCount: 3,
        },
      });
      expect(propertiesOf(logicalId(fns.refreshDeadLetters))).toEqual({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 14 * 24 * 3600,
      });
    });

    it("has three queues, every one encrypted and refusing requests without TLS", () => {
      const fns = stack.functions;
      const queues = [fns.healFailures, fns.refreshQueue, fns.refreshDeadLetters];
      template.resourceCountIs("AWS::SQS::Queue", queues.length);
      template.allResourcesProperties("AWS::SQS::Queue", { SqsManagedSseEnabled: true });
      template.resourceCountIs("AWS::SQS::QueuePolicy", queues.length);
      for (const queue of queues) {
        template.hasResourceProperties("AWS::SQS::QueuePolicy", {
          Queues: [{ Ref: logicalId(queue) }],
          PolicyDocument: {
            Statement: [
              {
                Effect: "Deny",
                Principal: { AWS: "*" },
                Action: "sqs:*",
                Resource: { "Fn::GetAtt": [logicalId(queue), "Arn"] },
                Condition: { Bool: { "aws:SecureTransport": "false" } },
              },
            ],
            Version: "2012-10-17",
          },
        });
      }
    });

    it("feeds the refresh-worker from the refresh queue, 10 messages an invocation gathered for up to 3 s, at most 10 invocations at once", () => {
      template.resourceCountIs("AWS::Lambda::EventSourceMapping", 1);
      template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
        EventSourceArn: { "Fn::GetAtt": [logicalId(stack.functions.refreshQueue), "Arn"] },
        FunctionName: { Ref: logicalId(stack.functions.refreshWorker) },
        BatchSize: 10,
        MaximumBatchingWindowInSeconds: 3,
        ScalingConfig: { MaximumConcurrency: 10 },
      });
    });
  });

  describe("bundles", () => {
    it("are ESM with the require shim, minified, with a source map", () => {
      for (const name of FUNCTION_NAMES) {
        const code = readFileSync(join(assetDir(name), "index.mjs"), "utf8");
        expect(code.startsWith(ESM_REQUIRE_SHIM), name).toBe(true);
        // Minified: local function names are mangled away.
        expect(code.includes("function createBroker("), name).toBe(false);
        expect(code.trimEnd().endsWith("//# sourceMappingURL=index.mjs.map"), name).toBe(true);
      }
    });

    it("bundle the branch key setup the same way, with the key store and without the login driver", () => {
      const code = readFileSync(join(assetDir(stack.branchKeys.setupFunction), "index.mjs"), "utf8");
      expect(code.startsWith(ESM_REQUIRE_SHIM)).toBe(true);
      expect(code.trimEnd().endsWith("//# sourceMappingURL=index.mjs.map")).toBe(true);
      // The Encryption SDK's branch key creation (its TransactWriteItems) is in it.
      expect(code).toContain("TransactWriteItems");
      expect(code.includes(LOGIN_DRIVER_MARKER)).toBe(false);
    });

    it("keep the login driver out of every bundle but fallback-login's", () => {
      const carries = (name: FunctionName) =>
        readFileSync(join(assetDir(name), "index.mjs"), "utf8").includes(LOGIN_DRIVER_MARKER);
      expect(carries("token-vend")).toBe(false);
      expect(carries("refresh")).toBe(false);
      expect(carries("refresh-worker")).toBe(false);
      expect(carries("connect")).toBe(false);
      expect(carries("fallback-login")).toBe(true);
    });

    it("are byte-identical to the bundles the tests and the benchmark build with esbuild's JS API", async () => {
      const built = await buildBundle("token-vend", tmp);
      const sha = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
      expect(sha(built.file)).toBe(sha(join(assetDir("token-vend"), BUNDLE.outFile)));
    });
  });

  describe("onboarding URL", () => {
    it("serves connect through a Function URL without IAM auth (the signed links protect it)", () => {
      template.resourceCountIs("AWS::Lambda::Url", 1);
      template.hasResourceProperties("AWS::Lambda::Url", {
        AuthType: "NONE",
        TargetFunctionArn: { "Fn::GetAtt": [logicalId(stack.functions.connect), "Arn"] },
      });
      // Anyone may call the URL, and only through the URL: no direct invoke for the world.
      template.hasResourceProperties("AWS::Lambda::Permission", {
        Action: "lambda:InvokeFunctionUrl",
        FunctionUrlAuthType: "NONE",
        Principal: "*",
        FunctionName: { "Fn::GetAtt": [logicalId(stack.functions.connect), "Arn"] },
      });
      template.hasResourceProperties("AWS::Lambda::Permission", {
        Action: "lambda:InvokeFunction",
        InvokedViaFunctionUrl: true,
        Principal: "*",
        FunctionName: { "Fn::GetAtt": [logicalId(stack.functions.connect), "Arn"] },
      });
      const publicPermissions = Object.values(template.findResources("AWS::Lambda::Permission")).filter(
        (p) => p.Properties.Principal === "*",
      );
      expect(publicPermissions).toHaveLength(2);
    });

    it("outputs the connect URL and the callback URL to register at Exact", () => {
      const host = {
        "Fn::Select": [
          2,
          {
            "Fn::Split": [
              "/",
              { "Fn::GetAtt": [Match.stringLikeRegexp("ConnectFunctionUrl"), "FunctionUrl"] },
            ],
          },
        ],
      };
      template.hasOutput("ConnectUrl", { Value: { "Fn::Join": ["", ["https://", host]] } });
      template.hasOutput("CallbackUrl", { Value: { "Fn::Join": ["", ["https://", host, "/callback"]] } });
    });
  });

  describe("secrets and events", () => {
    it("generates the link-signing key: a plain 64-character string without punctuation", () => {
      template.resourceCountIs("AWS::SecretsManager::Secret", 1);
      template.hasResourceProperties("AWS::SecretsManager::Secret", {
        GenerateSecretString: { PasswordLength: 64, ExcludePunctuation: true, IncludeSpace: false },
      });
      // A plain string: no template JSON, which link-key-source.ts would take as the key itself.
      template.hasResourceProperties("AWS::SecretsManager::Secret", {
        GenerateSecretString: Match.not(Match.objectLike({ SecretStringTemplate: Match.anyValue() })),
      });
    });

    it("has an event bus for the broker's events and outputs its name", () => {
      template.resourceCountIs("AWS::Events::EventBus", 1);
      template.hasOutput("EventBusName", { Value: { Ref: logicalId(stack.eventBus) } });
      template.hasOutput("ClientSecretPrefix", { Value: CLIENT_SECRET_PREFIX });
      template.hasOutput("LoginSecretPrefix", { Value: LOGIN_SECRET_PREFIX });
      template.hasOutput("TokenVendFunctionArn", {
        Value: { "Fn::GetAtt": [logicalId(stack.functions.tokenVend), "Arn"] },
      });
    });
  });

  describe("observability", () => {
    it("sends ReauthRequired, RefreshTokenExpiring, AppRejected, UserBlocked and TokenCallsHigh events to an encrypted, TLS-only alerts topic", () => {
      template.resourceCountIs("AWS::SNS::Topic", 1);
      template.hasResourceProperties("AWS::SNS::Topic", {
        KmsMasterKeyId: { "Fn::GetAtt": [Match.stringLikeRegexp("AlertsKey"), "Arn"] },
      });
      template.hasResourceProperties("AWS::SNS::TopicPolicy", {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
          ]),
        },
      });
      for (const types of [
        ["ReauthRequired"],
        ["RefreshTokenExpiring"],
        ["AppRejected", "UserBlocked", "TokenCallsHigh"],
      ]) {
        template.hasResourceProperties("AWS::Events::Rule", {
          EventBusName: { Ref: logicalId(stack.eventBus) },
          EventPattern: { source: ["exact-token-broker"], "detail-type": types },
          Targets: [Match.objectLike({ Arn: { Ref: logicalId(stack.observability.alertsTopic) } })],
        });
      }
    });

    it("alarms on ReauthRequired and RefreshTokenExpiring through their rules' matches", () => {
      for (const [alarm, rule] of [
        [stack.observability.reauthRequiredAlarm, stack.observability.reauthRequiredRule],
        [stack.observability.refreshTokenExpiringAlarm, stack.observability.refreshTokenExpiringRule],
      ] as const) {
        const props = propertiesOf(logicalId(alarm));
        expect(props).toMatchObject({
          Threshold: 1,
          ComparisonOperator: "GreaterThanOrEqualToThreshold",
          TreatMissingData: "notBreaching",
          AlarmActions: [{ Ref: logicalId(stack.observability.alertsTopic) }],
        });
        expect(JSON.stringify(props)).toContain('"MetricName":"TriggeredRules"');
        expect(JSON.stringify(props)).toContain(
          JSON.stringify({ Name: "RuleName", Value: { Ref: logicalId(rule) } }),
        );
      }
    });

    it("alarms on refresh failures: the refresh-worker's RefreshFailures, its failed batches and failed dispatch runs", () => {
      const sum = (id: string, metric: Record<string, unknown>) => ({
        Id: id,
        MetricStat: { Metric: metric, Period: 300, Stat: "Sum" },
        ReturnData: false,
      });
      const errorsOf = (fn: IConstruct) => ({
        Namespace: "AWS/Lambda",
        MetricName: "Errors",
        Dimensions: [{ Name: "FunctionName", Value: { Ref: logicalId(fn) } }],
      });
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        EvaluationPeriods: 3,
        Threshold: 1,
        Metrics: [
          Match.objectLike({
            Expression: "FILL(chains, 0) + FILL(dispatches, 0) + FILL(batches, 0)",
            ReturnData: true,
          }),
          sum("chains", {
            Namespace: METRICS_NAMESPACE,
            MetricName: "RefreshFailures",
            Dimensions: [{ Name: "service", Value: "refresh-worker" }],
          }),
          sum("dispatches", errorsOf(stack.functions.refresh)),
          sum("batches", errorsOf(stack.functions.refreshWorker)),
        ],
      });
    });

    it("alarms on token-vend's broker-side Errors, by errorType", () => {
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Threshold: 5,
        Metrics: Match.arrayWith([
          Match.objectLike({
            MetricStat: Match.objectLike({
              Metric: {
                Namespace: METRICS_NAMESPACE,
                MetricName: "Errors",
                Dimensions: [
                  { Name: "errorType", Value: "InternalError" },
                  { Name: "service", Value: "token-vend" },
                ],
              },
            }),
          }),
        ]),
      });
    });

    it("alarms when a fallback-login invocation lands in the failure queue", () => {
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "AWS/SQS",
        MetricName: "ApproximateNumberOfMessagesVisible",
        Dimensions: [
          {
            Name: "QueueName",
            Value: { "Fn::GetAtt": [logicalId(stack.functions.healFailures), "QueueName"] },
          },
        ],
      });
      template.resourceCountIs("AWS::CloudWatch::Alarm", 5);
      template.allResourcesProperties("AWS::CloudWatch::Alarm", {
        AlarmActions: [{ Ref: logicalId(stack.observability.alertsTopic) }],
      });
    });

    it("has a dashboard with vends, latency, lease waits, refreshes, heals and errors by code", () => {
      template.resourceCountIs("AWS::CloudWatch::Dashboard", 1);
      const body = JSON.stringify(template.findResources("AWS::CloudWatch::Dashboard"));
      for (const title of ["Vends", "Vend latency", "Lease waits", "Refreshes", "Heals", "Errors by code"]) {
        expect(body).toContain(`\\"title\\":\\"${title}`);
      }
      for (const metric of ["Vends", "VendLatency", "Refreshes", "Heals", "HealFailures"]) {
        expect(body).toContain(`\\"${metric}\\"`);
      }
      expect(body).toContain("SEARCH(");
      // Refreshes are the refresh-worker's: the dispatcher refreshes nothing.
      expect(body).toContain('[\\"ExactTokenBroker\\",\\"Refreshes\\",\\"service\\",\\"refresh-worker\\",');
      expect(body).not.toContain('\\"Refreshes\\",\\"service\\",\\"refresh\\"');
    });
  });
});
