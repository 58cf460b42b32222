import { randomUUID } from "node:crypto";
import {
  type AttributeValue,
  BatchWriteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
} from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import type { Broker } from "../../lib/broker.js";
import { toItem } from "../../lib/chain/chain-item.js";
import {
  type ChainRecord,
  ChainStatus,
  type ConnectionConfig,
  ConnectionMode,
  DivisionPinnedBy,
  LeasePurpose,
} from "../../lib/chain/chain-record.js";
import { ChainStore } from "../../lib/chain/chain-store.js";
import { HistoryDoor, type HistoryEntry, HistoryOutcome } from "../../lib/chain/history-entry.js";
import { connectionKey, guardKey } from "../../lib/chain/table-definition.js";
import { utcDay } from "../../lib/chain/token-call-cap.js";
import { dueAtAfter, prepareSealer, sealTokens } from "../../lib/chain/token-seal.js";
import type { BrokerConfig } from "../../lib/config.js";
import type { TokenCipher } from "../../lib/crypto/token-cipher.js";
import type { ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import type { Simulator } from "../../lib/sim/server.js";
import type { EventClock } from "../support/event-clock.js";

/** The one Exact app every connection of the bench belongs to (a SaaS, or an accounting firm). */
export interface ScaleApp {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly redirectUri: string;
  /** Where every connection's client secret is (one secret per app, lib/secrets/secret-layout.ts). */
  readonly secretId: string;
}

export interface SeedTarget {
  readonly connectionId: string;
  readonly username: string;
  readonly exactUserId: string;
  readonly division: number;
}

/**
 * The seed path at scale. The normal path (`connection add`, then an authorization code through
 * `onboarding.seed`: a guarded put, a consistent read, the lease, the code exchange, the stored
 * VERIFYING chain, /current/Me, the verified write, the guard, a history item) costs about ten
 * DynamoDB requests and two HTTP calls per connection; dynalite does about 700 requests a second
 * here. This path keeps what makes a chain real: the simulator issues the tokens through a code
 * exchange over HTTP (the broker's own OAuth client), the broker's cipher seals them
 * (prepareSealer + sealTokens, bound to the connection's incarnation), and the item is the one
 * the normal path leaves (checked attribute by attribute against a connection seeded the normal
 * way, {@link checkSameAttributes}), written with its guard in BatchWriteItem requests. It skips
 * the /current/Me call (the simulator's user ID and division are known), the lease's writes and
 * the history item (HIST#) the verified write leaves; the item keeps the two pending history
 * entries the normal path leaves on it.
 */
export class FastSeed {
  readonly #clock: EventClock;
  readonly #sim: Simulator;
  readonly #oauth: ExactOAuthClient;
  readonly #cipher: TokenCipher;
  readonly #config: BrokerConfig;
  readonly #dynamo: DynamoDBClient;
  readonly #tableName: string;
  readonly #app: ScaleApp;
  readonly #writer: BatchWriter;

  constructor(options: {
    readonly clock: EventClock;
    readonly sim: Simulator;
    readonly oauth: ExactOAuthClient;
    readonly cipher: TokenCipher;
    readonly config: BrokerConfig;
    readonly dynamo: DynamoDBClient;
    readonly tableName: string;
    readonly app: ScaleApp;
  }) {
    this.#clock = options.clock;
    this.#sim = options.sim;
    this.#oauth = options.oauth;
    this.#cipher = options.cipher;
    this.#config = options.config;
    this.#dynamo = options.dynamo;
    this.#tableName = options.tableName;
    this.#app = options.app;
    this.#writer = new BatchWriter(options.clock, options.dynamo, options.tableName);
  }

  configOf(connectionId: string): ConnectionConfig {
    const { clientId, redirectUri, secretId } = this.#app;
    return {
      connectionId,
      clientId,
      baseUrl: this.#sim.url,
      redirectUri,
      secretId,
      mode: ConnectionMode.Code,
    };
  }

  /**
   * The normal path, for one connection: `connection add` and `onboarding.seed` with a code.
   * @returns the item it left (raw), the template {@link checkSameAttributes} compares with
   */
  async seedNormally(target: SeedTarget, broker: Broker): Promise<Record<string, AttributeValue>> {
    const store = new ChainStore({ tableName: this.#tableName, client: this.#dynamo, now: this.#clock.now });
    await store.addConnection(this.configOf(target.connectionId), this.#clock.now());
    await broker.onboarding.seed(target.connectionId, this.#authorize(target));
    const out = await this.#dynamo.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: marshall({ pk: connectionKey(target.connectionId) }),
        ConsistentRead: true,
      }),
    );
    if (!out.Item) throw new Error(`seed: ${target.connectionId} vanished`);
    return out.Item;
  }

  /**
   * The fast path for one connection (see the class comment); resolves once its item is written.
   * @returns the refresh token Exact issued (to follow the chain by its hash: never printed),
   *   when the exchange was sent and its answer arrived, and the item written
   */
  async seed(target: SeedTarget): Promise<{
    readonly refreshToken: string;
    readonly sentAtMs: number;
    readonly arrivalMs: number;
    readonly expiresInSeconds: number;
    readonly item: Record<string, AttributeValue>;
  }> {
    const clock = this.#clock;
    const { clientId, clientSecret, redirectUri } = this.#app;
    const code = this.#authorize(target);
    const sentAtMs = clock.now();
    const outcome = await this.#oauth.exchangeCode(
      this.#sim.url,
      { clientId, clientSecret },
      code,
      redirectUri,
      this.#config.httpTimeoutMs,
    );
    if (outcome.kind !== "tokens" || !outcome.rotated.refreshToken || !outcome.rotated.expiresInSeconds) {
      throw new Error(`seed: the code exchange of ${target.connectionId} answered ${outcome.kind}`);
    }
    const arrivalMs = clock.now();
    const incarnation = randomUUID();
    const sealer = await prepareSealer(this.#cipher, { connectionId: target.connectionId, incarnation });
    const sealed = await sealTokens(sealer, outcome.rotated, arrivalMs, ConnectionMode.Code, this.#config);
    if (!sealed.access || !sealed.refresh) throw new Error("seed: nothing to seal");
    const nowMs = clock.now();
    const entry = (purpose: LeasePurpose, outcomeName: HistoryEntry["outcome"], status: ChainStatus) => ({
      atMs: nowMs,
      generation: 1,
      door: HistoryDoor.Seed,
      purpose,
      outcome: outcomeName,
      refreshHash: sealed.refresh?.refreshHash,
      status,
    });
    const base = {
      ...this.configOf(target.connectionId),
      incarnation,
      createdAtMs: sentAtMs,
      status: ChainStatus.Active,
      statusChangedAtMs: nowMs,
      generation: 1,
      leaseFence: 1,
      ...sealed.refresh,
      ...sealed.access,
      chainStartedAtMs: sentAtMs,
      failureStreak: 0,
      tokenCalls: { day: utcDay(arrivalMs), count: 1 },
      history: [
        entry(LeasePurpose.Onboard, HistoryOutcome.ChainStarted, ChainStatus.Verifying),
        entry(LeasePurpose.Verify, HistoryOutcome.Verified, ChainStatus.Active),
      ],
      exactUserId: target.exactUserId,
      exactUserName: target.username,
      division: target.division,
      pinnedDivision: target.division,
      divisionPinnedBy: DivisionPinnedBy.Consent,
    } satisfies ChainRecord;
    const record: ChainRecord = {
      ...base,
      dueShard: "due",
      dueAtMs: dueAtAfter(base, sealed, nowMs, false, this.#config),
    };
    const item = toItem(record);
    await this.#writer.put([
      item,
      marshall({
        pk: guardKey(clientId, target.exactUserId),
        connectionId: target.connectionId,
        clientId,
        exactUserId: target.exactUserId,
      }),
    ]);
    const { refreshToken, expiresInSeconds } = outcome.rotated;
    return { refreshToken, sentAtMs, arrivalMs, expiresInSeconds, item };
  }

  /** Writes what is waiting now. */
  flush(): Promise<void> {
    return this.#writer.flush();
  }

  #authorize(target: SeedTarget): string {
    return this.#sim.authorize({
      clientId: this.#app.clientId,
      username: target.username,
      redirectUri: this.#app.redirectUri,
    });
  }
}

/** The attributes the two seed paths wrote differ (names or types): the fast path no longer writes the normal path's item. */
export function checkSameAttributes(
  normal: Record<string, AttributeValue>,
  fast: Record<string, AttributeValue>,
): void {
  const a = Object.keys(normal).sort();
  const b = Object.keys(fast).sort();
  const onlyNormal = a.filter((key) => !b.includes(key));
  const onlyFast = b.filter((key) => !a.includes(key));
  if (onlyNormal.length + onlyFast.length > 0) {
    throw new Error(
      `bench:scale's fast seed no longer writes the item the normal seed path writes: only normal [${onlyNormal.join(", ")}], only fast [${onlyFast.join(", ")}] (bench/scale/fast-seed.ts)`,
    );
  }
  // The type too: the item's size, which DynamoDB bills, depends on it (binary ciphertexts).
  const typeOf = (value: AttributeValue | undefined) => Object.keys(value ?? {})[0];
  const retyped = a.filter((key) => typeOf(normal[key]) !== typeOf(fast[key]));
  if (retyped.length > 0) {
    throw new Error(
      `bench:scale's fast seed writes other attribute types than the normal seed path: [${retyped.map((key) => `${key} ${typeOf(normal[key])}/${typeOf(fast[key])}`).join(", ")}] (bench/scale/fast-seed.ts)`,
    );
  }
}

/** Items written in BatchWriteItem requests of 25 (DynamoDB's most), each put resolving once written. */
class BatchWriter {
  readonly #clock: EventClock;
  readonly #dynamo: DynamoDBClient;
  readonly #tableName: string;
  #items: Record<string, AttributeValue>[] = [];
  #waiting: Array<() => void> = [];
  #lingering = false;

  constructor(clock: EventClock, dynamo: DynamoDBClient, tableName: string) {
    this.#clock = clock;
    this.#dynamo = dynamo;
    this.#tableName = tableName;
  }

  put(items: Record<string, AttributeValue>[]): Promise<void> {
    const written = new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#items.push(...items);
    if (this.#items.length + 2 > 25) void this.flush();
    else if (!this.#lingering) {
      // A part batch waits a virtual second for more.
      this.#lingering = true;
      this.#clock.at(this.#clock.now() + 1_000, () => {
        this.#lingering = false;
        void this.flush();
      });
    }
    return written;
  }

  async flush(): Promise<void> {
    const items = this.#items;
    const waiting = this.#waiting;
    this.#items = [];
    this.#waiting = [];
    if (items.length === 0) return;
    let requests = items.map((Item) => ({ PutRequest: { Item } }));
    for (let attempt = 0; requests.length > 0; attempt += 1) {
      if (attempt > 20) throw new Error("seed: BatchWriteItem left items unprocessed 20 times");
      const out = await this.#dynamo.send(
        new BatchWriteItemCommand({ RequestItems: { [this.#tableName]: requests } }),
      );
      requests = (out.UnprocessedItems?.[this.#tableName] ?? []).flatMap((r) =>
        r.PutRequest?.Item ? [{ PutRequest: { Item: r.PutRequest.Item } }] : [],
      );
    }
    for (const resolve of waiting) resolve();
  }
}
