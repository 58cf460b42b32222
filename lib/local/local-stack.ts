import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Broker, type BrokerOverrides, createBroker } from "../broker.js";
import { ChainStore } from "../chain/chain-store.js";
import type { EngineLog } from "../chain/engine-deps.js";
import { generateLocalKey } from "../crypto/local-key.js";
import { OneExactIdentityDriver } from "../exact/login/one-exact-identity-driver.js";
import type { ConnectionSecret } from "../secrets/connection-secret.js";
import { type Simulator, type SimulatorOptions, startSimulator } from "../sim/server.js";
import { LOCAL_AWS_ENV, type LocalDynamo, startDynalite, startDynaliteProcess } from "./dynalite.js";

export interface LocalStackOptions {
  readonly sim?: SimulatorOptions;
  /** Extra broker environment (REFRESH_MARGIN_MS, LEASE_SECONDS, …). */
  readonly env?: Readonly<Record<string, string>>;
  /** The log every broker of this stack writes to, unless a caller passes its own. */
  readonly log?: EngineLog;
  /** The clock dynalite's `Date` headers report (a test's fake clock). @default the real clock */
  readonly dynamoNow?: () => number;
  /**
   * dynalite in a child process (startDynaliteProcess), on another core: clients other than the
   * stack's own then send `dynamoNow` themselves (sendVirtualNow). @default false: in this process
   */
  readonly dynamoInChildProcess?: boolean;
  /**
   * Where this stack's token-vend verifies callers (a moto_server); with it, vends are authorized
   * per connection (VEND_AUTHORIZATION=perConnection, BROKER_SERVER_ID "local-broker") unless `env`
   * says otherwise. @default no STS: VEND_AUTHORIZATION=stackWide, as there is none to verify with
   */
  readonly stsEndpoint?: string;
}

/** The BROKER_SERVER_ID of a local stack that verifies callers (LocalStackOptions.stsEndpoint). */
export const LOCAL_BROKER_SERVER_ID = "local-broker";

export interface DemoConnection {
  readonly connectionId: string;
  readonly clientId: string;
  readonly username: string;
  readonly redirectUri: string;
  readonly secretId: string;
}

/**
 * The broker's whole world on one machine: dynalite, the Exact simulator, a secrets file and a
 * local encryption key. Used by `npm start`, the benchmark and the integration tests, so all
 * three run the same wiring a Lambda does, only with local endpoints.
 */
export interface LocalStack {
  readonly dynamo: LocalDynamo;
  readonly sim: Simulator;
  readonly tableName: string;
  /** The environment a broker process (a Lambda, the CLI, a test child) gets. */
  readonly env: Readonly<Record<string, string>>;
  /** A new broker, as a new Lambda container would build it. */
  broker(overrides?: BrokerOverrides): Broker;
  /** A store on `now` (default Date.now), as a broker on that clock would build it. */
  store(now?: () => number): ChainStore;
  writeSecret(secretId: string, secret: ConnectionSecret): void;
  /** Registers an app and user at the simulator, stores the secret and adds the connection. */
  addConnection(
    connectionId: string,
    options?: {
      readonly username?: string;
      readonly clientId?: string;
      readonly mode?: "code" | "implicit";
      /** The connection's pinned division (`connection add --division`). */
      readonly division?: number;
    },
  ): Promise<DemoConnection>;
  /** Authorizes at the simulator (as a person would) and seeds the connection with the code. */
  seed(connection: DemoConnection): Promise<void>;
  close(): Promise<void>;
}

/** The driver shares the broker's clock, so a fake clock governs TOTP steps too. */
function pick(overrides: BrokerOverrides): { now?: () => number; sleep?: (ms: number) => Promise<void> } {
  return {
    ...(overrides.now ? { now: overrides.now } : {}),
    ...(overrides.sleep ? { sleep: overrides.sleep } : {}),
  };
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const dynamo = options.dynamoInChildProcess
    ? await startDynaliteProcess({ now: options.dynamoNow })
    : await startDynalite({ now: options.dynamoNow });
  const sim = await startSimulator(options.sim ?? {});
  const tableName = await dynamo.createTable();
  const dir = mkdtempSync(join(tmpdir(), "exact-broker-"));
  const secretsFile = join(dir, "secrets.json");
  const linkKeyId = "exact-broker/link-signing-key";
  writeFileSync(secretsFile, `${JSON.stringify({ [linkKeyId]: randomBytes(32).toString("base64url") })}\n`, {
    mode: 0o600,
  });
  const accessTtl = options.sim?.accessTtlSeconds ?? 600;
  const refreshAfter = options.sim?.refreshAfterSeconds ?? Math.max(0, accessTtl - 30);
  const env: Record<string, string> = {
    ...LOCAL_AWS_ENV,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    TABLE_NAME: tableName,
    LOCAL_ENCRYPTION_KEY: generateLocalKey(),
    LOCAL_SECRETS_FILE: secretsFile,
    EXACT_ALLOW_LOOPBACK: "1",
    LINK_SIGNING_SECRET_ID: linkKeyId,
    // The broker's refresh window must match the simulator's: Exact's is 30 s of 600.
    REFRESH_WINDOW_SECONDS: String(accessTtl - refreshAfter),
    ...(options.stsEndpoint
      ? { VEND_AUTHORIZATION: "perConnection", BROKER_SERVER_ID: LOCAL_BROKER_SERVER_ID }
      : { VEND_AUTHORIZATION: "stackWide" }),
    ...options.env,
  };

  const stack: LocalStack = {
    dynamo,
    sim,
    tableName,
    env,
    broker: (overrides = {}) =>
      createBroker(env, {
        dynamo: dynamo.client,
        // Locally logins run in-process, as they do in fallback-login in AWS.
        login: new OneExactIdentityDriver({ allowLoopback: true, ...pick(overrides) }),
        ...(options.log ? { log: options.log } : {}),
        ...(options.stsEndpoint ? { stsEndpoint: options.stsEndpoint } : {}),
        ...overrides,
      }),
    store: (now) => new ChainStore({ tableName, client: dynamo.client, ...(now ? { now } : {}) }),
    writeSecret(secretId, secret) {
      const all = JSON.parse(readFileSync(secretsFile, "utf8")) as Record<string, ConnectionSecret>;
      all[secretId] = secret;
      writeFileSync(secretsFile, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 });
    },
    async addConnection(connectionId, connection = {}) {
      const clientId = connection.clientId ?? `app-${connectionId}`;
      const username = connection.username ?? `user-${connectionId}@example.com`;
      const redirectUri = "https://broker.example.com/callback";
      const secretId = `exact/${connectionId}`;
      const clientSecret = `cs-sEcReT-${clientId}-0123456789`;
      // Derived from the user, so connections of one Exact user (on two apps) share it.
      const password = `pw-sEcReT-${username}-0123456789`;
      // Local secrets carry "sEcReT" and simulator tokens "simAT!"/"simRT!", so the test suite's leak
      // guard can spot either in any output.
      const totpSecret = "JBSWY3DPEHPK3PXP";
      try {
        sim.addApp({ clientId, clientSecret, redirectUris: [redirectUri] });
      } catch {
        // Several connections may share one app (different users); the first one created it.
      }
      try {
        sim.addUser({ username, password, totpSecret });
      } catch {
        // Another connection of this Exact user (another app) created it.
      }
      stack.writeSecret(secretId, { clientSecret, username, password, totpSecret });
      await stack.store().addConnection(
        {
          connectionId,
          clientId,
          baseUrl: sim.url,
          redirectUri,
          secretId,
          mode: connection.mode ?? "code",
          ...(connection.division !== undefined ? { pinnedDivision: connection.division } : {}),
        },
        Date.now(),
      );
      return { connectionId, clientId, username, redirectUri, secretId };
    },
    async seed(connection) {
      const code = sim.authorize({
        clientId: connection.clientId,
        username: connection.username,
        redirectUri: connection.redirectUri,
      });
      await stack.broker().onboarding.seed(connection.connectionId, code);
    },
    async close() {
      await sim.close();
      await dynamo.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return stack;
}
