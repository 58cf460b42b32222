import { DeleteItemCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { type AppState, AppStates } from "../../lib/chain/app-states.js";
import type { ChainRecord } from "../../lib/chain/chain-record.js";
import { ChainStore } from "../../lib/chain/chain-store.js";
import { connectionKey } from "../../lib/chain/table-definition.js";
import { type BrokerConfig, loadConfig } from "../../lib/config.js";
import { createTokenCipher, type TokenCipher } from "../../lib/crypto/token-cipher.js";
import { SecretUnavailable } from "../../lib/errors.js";
import { type LocalStack, startLocalStack } from "../../lib/local/local-stack.js";
import { createLinkKeySource, type LinkKeySource } from "../../lib/onboarding/link-key-source.js";
import {
  type ConnectionSecret,
  type LoginCredentials,
  loginCredentialsOf,
} from "../../lib/secrets/connection-secret.js";
import type { SecretOwner } from "../../lib/secrets/secret-layout.js";
import type { SecretGetOptions, SecretSource } from "../../lib/secrets/secret-source.js";
import type { ChainStats, LoginCounts } from "../../lib/sim/stats.js";
import { CampaignClock } from "./campaign-clock.js";
import { type InProcessDynamo, startInProcessDynalite } from "./in-process-dynalite.js";

/** A connection of one case: its own Exact user and secret at the simulator, its own app or a peer's. */
export interface CampaignConnection {
  readonly connectionId: string;
  readonly clientId: string;
  readonly username: string;
  readonly redirectUri: string;
  readonly secretId: string;
  readonly mode: "code" | "implicit";
}

/**
 * Secrets in memory, one combined value per connection (the layout rules have their own tests,
 * test/secrets/): a campaign adds hundreds of connections, and a file would be re-read per call.
 */
class MemorySecrets implements SecretSource {
  readonly #secrets = new Map<string, ConnectionSecret>();
  /** Client secrets the containers still hold in their cache (Powertools'), until a forced fetch. */
  readonly #cachedClientSecrets = new Map<string, string>();

  set(secretId: string, secret: ConnectionSecret): void {
    this.#secrets.set(secretId, secret);
  }

  delete(secretId: string): void {
    this.#secrets.delete(secretId);
    this.#cachedClientSecrets.delete(secretId);
  }

  peek(secretId: string): ConnectionSecret | undefined {
    return this.#secrets.get(secretId);
  }

  /**
   * Warm containers cached `clientSecret` before the secret was rotated: reads answer it until one
   * forces a fetch (`forceFetch`, as after `invalid_client`), which refreshes the cache for all.
   */
  cacheStaleClientSecret(secretId: string, clientSecret: string): void {
    this.#cachedClientSecrets.set(secretId, clientSecret);
  }

  async clientSecret(secretId: string, options: SecretGetOptions = {}): Promise<string> {
    const cached = this.#cachedClientSecrets.get(secretId);
    if (cached !== undefined && !options.forceFetch) return cached;
    this.#cachedClientSecrets.delete(secretId);
    return this.#read(secretId).clientSecret;
  }

  async loginCredentials(owner: SecretOwner): Promise<LoginCredentials | undefined> {
    return loginCredentialsOf(this.#read(owner.secretId));
  }

  #read(secretId: string): ConnectionSecret {
    const secret = this.#secrets.get(secretId);
    if (!secret) throw new SecretUnavailable(`Secret ${secretId} was not found`);
    return secret;
  }
}

/**
 * One campaign file's world: dynalite, the Exact simulator, the cipher and the secrets, all on
 * one fake clock, shared by every case of the file. Cases stay independent through fresh
 * connections (new connection ID, app and user) and a simulator reset per case.
 *
 * The local stack (lib/local) provides them all: the simulator over HTTP on 127.0.0.1 (its
 * faults reset and refuse sockets), the configuration and the keys. DynamoDB is dynalite as the
 * stack starts it, with the stack's table, but reached in process (in-process-dynalite.ts): the
 * SDK's and dynalite's own code on each call, without the loopback socket between them.
 */
export class World {
  readonly clock: CampaignClock;
  readonly stack: LocalStack;
  /** The SDK client of the world's dynalite: every broker's DynamoDB calls go here (through its tap). */
  readonly dynamo: DynamoDBClient;
  readonly tableName: string;
  readonly config: BrokerConfig;
  readonly cipher: TokenCipher;
  readonly secrets = new MemorySecrets();
  readonly linkKeys: LinkKeySource;
  /** What a token or secret looks like in a log line or event (test/support/leak-guard.ts). */
  readonly leakPattern: RegExp;
  readonly #store: ChainStore;
  readonly #apps: AppStates;
  readonly #dynalite: InProcessDynamo;
  #connections = 0;

  private constructor(
    clock: CampaignClock,
    stack: LocalStack,
    dynalite: InProcessDynamo,
    leakPattern: RegExp,
  ) {
    this.clock = clock;
    this.stack = stack;
    this.#dynalite = dynalite;
    this.dynamo = dynalite.client;
    this.tableName = stack.tableName;
    this.leakPattern = leakPattern;
    this.config = loadConfig(stack.env);
    this.cipher = createTokenCipher(stack.env);
    this.linkKeys = createLinkKeySource(stack.env);
    this.#store = new ChainStore({ tableName: stack.tableName, client: this.dynamo, now: clock.now });
    this.#apps = new AppStates({ tableName: stack.tableName, client: this.dynamo });
  }

  /** @param leakPattern the leak guard's pattern (test/support/leak-guard.ts) */
  static async start(leakPattern: RegExp): Promise<World> {
    const clock = new CampaignClock();
    const stack = await startLocalStack({ dynamoNow: clock.now, sim: { now: clock.now } });
    const dynalite = await startInProcessDynalite({ now: clock.now, tableName: stack.tableName });
    return new World(clock, stack, dynalite, leakPattern);
  }

  get sim() {
    return this.stack.sim;
  }

  /** The unwrapped store on the campaign's clock: what the checker reads with, never faulted. */
  get store(): ChainStore {
    return this.#store;
  }

  /** What the broker holds for an app at the simulator (outage, rejections), read with the unfaulted client. */
  app(clientId: string): Promise<AppState> {
    return this.#apps.read(clientId, this.sim.url);
  }

  async item(connectionId: string): Promise<ChainRecord | undefined> {
    return this.#store.get(connectionId);
  }

  /**
   * A new connection with its own Exact user, and its own app unless `peerOf` names a connection
   * whose app it shares (two connections of one app, two users: a hand-over, outage pacing); the
   * simulator was reset for the case.
   */
  async addConnection(mode: "code" | "implicit", peerOf?: CampaignConnection): Promise<CampaignConnection> {
    this.#connections += 1;
    const connectionId = `c${this.#connections}`;
    const clientId = peerOf?.clientId ?? `app-${connectionId}`;
    const redirectUri = "https://broker.example.com/callback";
    const secretId = `exact/${connectionId}`;
    // "sEcReT" and the TOTP secret are what the leak guard looks for (test/support/leak-guard.ts).
    const clientSecret = `cs-sEcReT-${clientId}-0123456789`;
    if (!peerOf) this.sim.addApp({ clientId, clientSecret, redirectUris: [redirectUri] });
    const { username, password, totpSecret } = this.addExactUser(connectionId);
    this.secrets.set(secretId, { clientSecret, username, password, totpSecret });
    await this.#store.addConnection(
      { connectionId, clientId, baseUrl: this.sim.url, redirectUri, secretId, mode },
      this.clock.now(),
    );
    return { connectionId, clientId, username, redirectUri, secretId, mode };
  }

  /** An Exact user at the simulator (no connection of its own yet), named after `name`. */
  addExactUser(name: string = `u${++this.#connections}`): {
    username: string;
    password: string;
    totpSecret: string;
  } {
    const username = `user-${name}@example.com`;
    const password = `pw-sEcReT-${name}-0123456789`;
    const totpSecret = "JBSWY3DPEHPK3PXP";
    this.sim.addUser({ username, password, totpSecret });
    return { username, password, totpSecret };
  }

  /** The connection's secret with another password (an operator's mistake), or its own back. */
  setPassword(connection: CampaignConnection, password: string | undefined): void {
    const secret = this.secrets.peek(connection.secretId);
    if (!secret) throw new Error(`no secret ${connection.secretId}`);
    const own = `pw-sEcReT-${connection.connectionId}-0123456789`;
    this.secrets.set(connection.secretId, { ...secret, password: password ?? own });
  }

  /**
   * Removes a case's connection, so the next case's scheduled refresh finds only its own. Its
   * guard item stays: it names an app and user no later case uses.
   */
  async removeConnection(connection: CampaignConnection): Promise<void> {
    await this.dynamo.send(
      new DeleteItemCommand({
        TableName: this.tableName,
        Key: marshall({ pk: connectionKey(connection.connectionId) }),
      }),
    );
    this.secrets.delete(connection.secretId);
  }

  /** A code for the connection's app, as if `username` (its own user by default) had logged in and consented in a browser. */
  authorize(connection: CampaignConnection, username: string = connection.username): string {
    return this.sim.authorize({
      clientId: connection.clientId,
      username,
      redirectUri: connection.redirectUri,
    });
  }

  /** Exact's chain of the connection's app and `username` (its own user by default). */
  chainStats(connection: CampaignConnection, username: string = connection.username): ChainStats | undefined {
    return this.sim.stats().chains[`${connection.clientId}/${username}`];
  }

  loginStats(username: string): LoginCounts | undefined {
    return this.sim.stats().logins[username];
  }

  async close(): Promise<void> {
    await this.#dynalite.close();
    await this.stack.close();
  }
}
