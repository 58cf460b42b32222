import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { createVendAuthorizer, type VendAuthorizer } from "./auth/vend-authorizer.js";
import { AppStates } from "./chain/app-states.js";
import { ChainStore } from "./chain/chain-store.js";
import { DivisionSetting } from "./chain/division-setting.js";
import type { EngineDeps, EngineLog, HealTrigger } from "./chain/engine-deps.js";
import { HealDoor } from "./chain/heal-door.js";
import { InProcessHealTrigger, LambdaHealTrigger } from "./chain/heal-trigger.js";
import { Onboarding } from "./chain/onboarding.js";
import { RefreshDispatch, type RefreshQueue } from "./chain/refresh-dispatch.js";
import { RefreshWorker } from "./chain/refresh-worker.js";
import { ScheduledRefresh } from "./chain/scheduled-refresh.js";
import { TotpStepClaims } from "./chain/totp-step-claims.js";
import { VendDoor, type VendDoorOptions } from "./chain/vend-door.js";
import { type BrokerConfig, loadConfig } from "./config.js";
import { createTokenCipher } from "./crypto/token-cipher.js";
import { EventBridgePublisher, LogPublisher } from "./events/event-publishers.js";
import { ExactOAuthClient } from "./exact/oauth-client.js";
import { createLogger } from "./log/logger.js";
import { registerSecret } from "./log/redactor.js";
import type { SecretSource } from "./secrets/secret-source.js";
import { createSecretSource } from "./secrets/secret-source.js";

/** The engine's three doors (vend, refresh, onboarding) over one set of dependencies. */
export interface Broker {
  readonly config: BrokerConfig;
  readonly deps: EngineDeps;
  readonly vend: VendDoor;
  /** The scheduled refresh in one process: where there is no queue (the CLI, `npm start`). */
  readonly refresh: ScheduledRefresh;
  /** The scheduled refresh at scale: queues due chains; absent without a queue (`refreshQueue`). */
  readonly dispatch?: RefreshDispatch;
  /** Does the queued chains' work (the refresh-worker function). */
  readonly refreshWorker: RefreshWorker;
  readonly heal: HealDoor;
  readonly onboarding: Onboarding;
  /** `connection set-division`: pins another division, checked with the connection's chain. */
  readonly division: DivisionSetting;
  /** How doors start a heal: fallback-login in AWS, in this process locally. */
  readonly healTrigger: HealTrigger;
  /** token-vend's check of who may get which connection (lib/auth/), before any chain work. */
  readonly authorizer: VendAuthorizer;
}

export interface BrokerOverrides extends Partial<Omit<EngineDeps, "config">> {
  readonly dynamo?: DynamoDBClient;
  readonly vendOptions?: VendDoorOptions;
  readonly healTrigger?: HealTrigger;
  /** Where token-vend verifies callers: tests point it at moto_server (never taken from an event). */
  readonly stsEndpoint?: string;
  /**
   * Where the scheduled refresh queues due chains: the refresh function passes SQS
   * (functions/refresh.ts, REFRESH_QUEUE_URL), so no other bundle carries the SQS client.
   */
  readonly refreshQueue?: RefreshQueue;
}

/** Every secret value read is registered with the log redactor before anyone can log it. */
function registering(source: SecretSource): SecretSource {
  return {
    async clientSecret(secretId, options) {
      const clientSecret = await source.clientSecret(secretId, options);
      registerSecret(clientSecret);
      return clientSecret;
    },
    async loginCredentials(owner, options) {
      const login = await source.loginCredentials(owner, options);
      if (login) {
        registerSecret(login.password);
        registerSecret(login.totpSecret);
      }
      return login;
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * Builds the broker from the environment (TABLE_NAME, KMS_KEY_ARN or LOCAL_ENCRYPTION_KEY,
 * BRANCH_KEY_STORE_TABLE_NAME and BRANCH_KEY_ID (lib/crypto/token-cipher.ts), LOCAL_SECRETS_FILE, EVENT_BUS_NAME, FALLBACK_LOGIN_FUNCTION_NAME, timing settings). Throws ConfigurationError at start when the
 * environment is inconsistent, so a misconfigured function fails its init, not its first vend.
 */
export function createBroker(env: NodeJS.ProcessEnv = process.env, overrides: BrokerOverrides = {}): Broker {
  const config = loadConfig(env);
  const log: EngineLog = overrides.log ?? createLogger({ serviceName: "exact-token-broker" });
  const now = overrides.now ?? Date.now;
  const sleepFn = overrides.sleep ?? sleep;
  const dynamo = overrides.dynamo ?? new DynamoDBClient({});
  const deps: EngineDeps = {
    config,
    store:
      overrides.store ?? new ChainStore({ tableName: config.tableName, client: dynamo, now, sleep: sleepFn }),
    apps: overrides.apps ?? new AppStates({ tableName: config.tableName, client: dynamo }),
    // The branch key store (if set) reads through the broker's client: one client per process.
    cipher: overrides.cipher ?? createTokenCipher(env, { branchKeyDynamoClient: dynamo }),
    secrets: registering(overrides.secrets ?? createSecretSource(env)),
    oauth: overrides.oauth ?? new ExactOAuthClient({ now }),
    log,
    events:
      overrides.events ??
      (env.EVENT_BUS_NAME
        ? new EventBridgePublisher({ busName: env.EVENT_BUS_NAME, log })
        : new LogPublisher(log)),
    ...(overrides.login
      ? {
          login: overrides.login,
          totpClaims:
            overrides.totpClaims ?? new TotpStepClaims({ tableName: config.tableName, client: dynamo }),
        }
      : {}),
    now,
    sleep: sleepFn,
    random: overrides.random ?? Math.random,
    owner: overrides.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
  };
  const heal = new HealDoor(deps);
  const healTrigger =
    overrides.healTrigger ??
    (env.FALLBACK_LOGIN_FUNCTION_NAME
      ? new LambdaHealTrigger({ functionName: env.FALLBACK_LOGIN_FUNCTION_NAME, log })
      : new InProcessHealTrigger(() => heal, log));
  const vend = new VendDoor(deps, { healTrigger, ...overrides.vendOptions });
  const refreshQueue = overrides.refreshQueue;
  return {
    config,
    deps,
    vend,
    refresh: new ScheduledRefresh(deps, { healTrigger }),
    ...(refreshQueue ? { dispatch: new RefreshDispatch(deps, refreshQueue) } : {}),
    refreshWorker: new RefreshWorker(deps, healTrigger),
    heal,
    onboarding: new Onboarding(deps),
    division: new DivisionSetting(deps, (connectionId, minValiditySeconds) =>
      vend.vend(connectionId, minValiditySeconds),
    ),
    healTrigger,
    authorizer: createVendAuthorizer(env, {
      tableName: config.tableName,
      dynamo,
      log,
      now,
      ...(overrides.stsEndpoint ? { stsEndpoint: overrides.stsEndpoint } : {}),
    }),
  };
}
