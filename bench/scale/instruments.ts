import { AsyncLocalStorage } from "node:async_hooks";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { hashToken } from "../../lib/chain/token-seal.js";
import { BRANCH_KEY_CACHE_TTL_SECONDS } from "../../lib/crypto/branch-key-store.js";
import type { TokenCipher } from "../../lib/crypto/token-cipher.js";
import type { TokenOutcome } from "../../lib/exact/classify-token-response.js";
import { type HttpSend, sendHttp } from "../../lib/exact/http.js";
import { type ClientCredentials, ExactOAuthClient } from "../../lib/exact/oauth-client.js";
import { countingDynamo, type RequestCounts } from "../../lib/local/counting-dynamo.js";
import { sendVirtualNow } from "../../lib/local/dynalite.js";
import { createLayoutSource } from "../../lib/secrets/secret-layout.js";
import type { SecretSource } from "../../lib/secrets/secret-source.js";
import { DEFAULT_SECRET_MAX_AGE_SECONDS } from "../../lib/secrets/secrets-manager-source.js";
import type { EventClock } from "../support/event-clock.js";
import { BRANCH_KEY_USE, LATENCY_MS } from "./model.js";

/** Who made a call: the three functions the bench runs, and the bench itself (seeding, aging, reading). */
export const Caller = {
  TokenVend: "token-vend",
  Refresh: "refresh",
  RefreshWorker: "refresh-worker",
  Bench: "bench",
} as const;
export type Caller = (typeof Caller)[keyof typeof Caller];
export const FUNCTIONS = [Caller.Refresh, Caller.RefreshWorker, Caller.TokenVend] as const;
export type BrokerFunctionName = (typeof FUNCTIONS)[number];

/** Requests one caller made, by kind; DynamoDB's by command. */
export interface CallCounts {
  dynamo: RequestCounts;
  tokenCalls: number;
  meCalls: number;
  cipherCalls: number;
  kmsRequests: number;
  /** Branch-key loads' GetItem on the key store (a table of its own: not in `dynamo`). */
  keyStoreReads: number;
  /**
   * Request units DynamoDB bills for `dynamo`'s requests: the table's (by item size, as dynalite
   * reports them with ReturnConsumedCapacity) and the due index's (see {@link INDEX_WRITE_UNITS}).
   */
  readUnits: number;
  writeUnits: number;
  secretFetches: number;
  sqsSends: number;
  sqsMessages: number;
  /** Batches the worker's event source took: each a ReceiveMessage and a DeleteMessageBatch. */
  sqsReceives: number;
}

/**
 * Write units a due-index change costs beside the table's: a write that moves `dueAtMs` (the
 * index's sort key; keys-only, under 1 KB) deletes the old index entry and puts the new one.
 */
export const INDEX_WRITE_UNITS = 2;

const WRITE_COMMANDS = new Set([
  "PutItemCommand",
  "UpdateItemCommand",
  "DeleteItemCommand",
  "BatchWriteItemCommand",
]);

export function emptyCounts(): CallCounts {
  return {
    dynamo: {},
    tokenCalls: 0,
    meCalls: 0,
    cipherCalls: 0,
    kmsRequests: 0,
    keyStoreReads: 0,
    readUnits: 0,
    writeUnits: 0,
    secretFetches: 0,
    sqsSends: 0,
    sqsMessages: 0,
    sqsReceives: 0,
  };
}

export function copyCounts(counts: CallCounts): CallCounts {
  return { ...counts, dynamo: { ...counts.dynamo } };
}

/** `later − earlier`, field by field. */
export function diffCounts(later: CallCounts, earlier: CallCounts): CallCounts {
  const dynamo: RequestCounts = {};
  for (const [command, n] of Object.entries(later.dynamo)) {
    const d = n - (earlier.dynamo[command] ?? 0);
    if (d > 0) dynamo[command] = d;
  }
  return {
    dynamo,
    tokenCalls: later.tokenCalls - earlier.tokenCalls,
    meCalls: later.meCalls - earlier.meCalls,
    cipherCalls: later.cipherCalls - earlier.cipherCalls,
    kmsRequests: later.kmsRequests - earlier.kmsRequests,
    keyStoreReads: later.keyStoreReads - earlier.keyStoreReads,
    readUnits: later.readUnits - earlier.readUnits,
    writeUnits: later.writeUnits - earlier.writeUnits,
    secretFetches: later.secretFetches - earlier.secretFetches,
    sqsSends: later.sqsSends - earlier.sqsSends,
    sqsMessages: later.sqsMessages - earlier.sqsMessages,
    sqsReceives: later.sqsReceives - earlier.sqsReceives,
  };
}

export function dynamoTotal(counts: CallCounts): number {
  return Object.values(counts.dynamo).reduce((a, b) => a + b, 0);
}

/**
 * What one vend did besides reading the table: token calls it made itself and virtual time it
 * slept (for a window, or polling another holder's lease or generation). Set per vend through
 * AsyncLocalStorage, so the instruments below can tell which vend made a call.
 */
export interface VendMarks {
  tokenCalls: number;
  sleptMs: number;
}
export const vendMarks = new AsyncLocalStorage<VendMarks>();

/** One successful token call: the chain's next generation. */
export interface TokenArrival {
  readonly connectionId: string;
  /** When the request left: Exact issued the tokens at or after this, so they expire at or after this + life. */
  readonly sentAtMs: number;
  readonly arrivalMs: number;
  readonly expiresInSeconds: number;
  readonly by: Caller;
}

/**
 * The bench's instruments: per caller, a DynamoDB client that counts its requests and answers
 * after the modelled latency; an OAuth client over real HTTP to the simulator with modelled
 * latency, which notes every token that arrived (for which connection: it follows each chain's
 * refresh token by hash); the real cipher, counted; Secrets Manager modelled as a store with
 * Powertools' cache per container.
 */
export class Instruments {
  readonly counts: Record<Caller, CallCounts> = {
    [Caller.TokenVend]: emptyCounts(),
    [Caller.Refresh]: emptyCounts(),
    [Caller.RefreshWorker]: emptyCounts(),
    [Caller.Bench]: emptyCounts(),
  };
  readonly arrivals: TokenArrival[] = [];
  /** Token-endpoint answers other than tokens, by kind (none expected). */
  readonly refusals: Record<string, number> = {};
  readonly #clock: EventClock;
  readonly #dynamo = new Map<Caller, DynamoDBClient>();
  readonly #endpoint: string;
  /** Refresh-token hash → connection: each chain's live refresh token. */
  readonly #chainOf = new Map<string, string>();
  readonly #secrets = new Map<string, unknown>();

  constructor(clock: EventClock, dynamoEndpoint: string) {
    this.#clock = clock;
    this.#endpoint = dynamoEndpoint;
  }

  /** One DynamoDB client per caller (a function's containers share it: the counts are per function). */
  dynamo(caller: Caller): DynamoDBClient {
    let client = this.#dynamo.get(caller);
    if (!client) {
      const counting = countingDynamo(this.#endpoint);
      client = counting.client;
      this.counts[caller].dynamo = counting.counts;
      // dynalite in a child process reports the virtual clock only if told it (lib/local/dynalite.ts).
      sendVirtualNow(client, this.#clock.now);
      const counts = this.counts[caller];
      client.middlewareStack.add(
        (next, context) => async (args) => {
          const input = args.input as Record<string, unknown>;
          const command = String(context.commandName ?? "");
          const write = WRITE_COMMANDS.has(command);
          if (command !== "QueryCommand") input.ReturnConsumedCapacity = "TOTAL";
          const out = await next(args);
          const consumed = (out.output as { ConsumedCapacity?: { CapacityUnits?: number } }).ConsumedCapacity;
          // dynalite reports no capacity for a Query: a keys-only index page, eventually consistent.
          const units = consumed?.CapacityUnits ?? 0.5;
          if (write) {
            const movesDue = JSON.stringify(input.ExpressionAttributeNames ?? {}).includes("dueAtMs");
            counts.writeUnits += units + (movesDue ? INDEX_WRITE_UNITS : 0);
          } else {
            counts.readUnits += units;
          }
          return out;
        },
        { step: "initialize", name: "consumedCapacity" },
      );
      const latencyMs = caller === Caller.Bench ? 0 : LATENCY_MS.dynamo;
      client.middlewareStack.add((next) => (args) => this.#clock.track(() => next(args), latencyMs), {
        step: "initialize",
        name: "trackOnEventClock",
      });
      this.#dynamo.set(caller, client);
    }
    return client;
  }

  /** Follows a chain from this refresh token on (a seed's, or one the bench aged). */
  follow(connectionId: string, refreshToken: string): void {
    this.#chainOf.set(hashToken(refreshToken), connectionId);
  }

  /** The same, by the refresh token's hash (an item's `refreshHash`). */
  followHash(connectionId: string, refreshHash: string): void {
    this.#chainOf.set(refreshHash, connectionId);
  }

  oauth(caller: Caller): ExactOAuthClient {
    const clock = this.#clock;
    const counts = this.counts[caller];
    const send: HttpSend = (request) => {
      const token = request.url.endsWith("/api/oauth2/token");
      if (token) counts.tokenCalls += 1;
      else counts.meCalls += 1;
      const marks = vendMarks.getStore();
      if (marks && token) marks.tokenCalls += 1;
      return clock.track(() => sendHttp(request), token ? LATENCY_MS.token : LATENCY_MS.me);
    };
    const noteArrival = (connectionId: string | undefined, sentAtMs: number, outcome: TokenOutcome): void => {
      if (outcome.kind !== "tokens") {
        this.refusals[outcome.kind] = (this.refusals[outcome.kind] ?? 0) + 1;
        return;
      }
      const { refreshToken, expiresInSeconds } = outcome.rotated;
      if (!connectionId || !refreshToken || !expiresInSeconds) return;
      this.#chainOf.set(hashToken(refreshToken), connectionId);
      this.arrivals.push({ connectionId, sentAtMs, arrivalMs: clock.now(), expiresInSeconds, by: caller });
    };
    const chainOf = this.#chainOf;
    return new (class extends ExactOAuthClient {
      override async refresh(
        baseUrl: string,
        creds: ClientCredentials,
        refreshToken: string,
        timeoutMs: number,
      ): Promise<TokenOutcome> {
        const hash = hashToken(refreshToken);
        const connectionId = chainOf.get(hash);
        const sentAtMs = clock.now();
        const outcome = await super.refresh(baseUrl, creds, refreshToken, timeoutMs);
        if (outcome.kind === "tokens") chainOf.delete(hash);
        noteArrival(connectionId, sentAtMs, outcome);
        return outcome;
      }
    })({ now: clock.now, send });
  }

  /**
   * One container's cipher: the real one, each call counted, and the branch-key loads the
   * hierarchical keyring would make in this container (BRANCH_KEY_USE), each a key store read and
   * a KMS request with their latency.
   */
  cipher(inner: TokenCipher, caller: Caller): TokenCipher {
    const clock = this.#clock;
    const counts = this.counts[caller];
    const loadedAtMs: Record<"seal" | "open", number> = {
      seal: Number.NEGATIVE_INFINITY,
      open: Number.NEGATIVE_INFINITY,
    };
    const call = <T>(kind: keyof typeof BRANCH_KEY_USE, run: () => Promise<T>): Promise<T> => {
      counts.cipherCalls += 1;
      const use = BRANCH_KEY_USE[kind];
      const loads = use !== undefined && clock.now() - loadedAtMs[use] >= BRANCH_KEY_CACHE_TTL_SECONDS * 1000;
      if (loads) {
        loadedAtMs[use] = clock.now();
        counts.kmsRequests += 1;
        counts.keyStoreReads += 1;
      }
      return clock.track(run, loads ? LATENCY_MS.kms + LATENCY_MS.dynamo : 0);
    };
    return {
      encrypt: (plaintext, binding) => call("encrypt", () => inner.encrypt(plaintext, binding)),
      decrypt: (ciphertext, binding) => call("decrypt", () => inner.decrypt(ciphertext, binding)),
      prepare: async (chain) => {
        const sealer = await call("prepare", () => inner.prepare(chain));
        return { seal: (plaintext, kind) => call("seal", () => sealer.seal(plaintext, kind)) };
      },
    };
  }

  /** Stores a secret's value in the modelled Secrets Manager. */
  putSecret(secretId: string, value: unknown): void {
    this.#secrets.set(secretId, value);
  }

  /**
   * One container's secret source: Secrets Manager as the broker reads it in AWS
   * (lib/secrets/secrets-manager-source.ts: Powertools Parameters, each value cached in the
   * container for DEFAULT_SECRET_MAX_AGE_SECONDS), a miss costing one GetSecretValue.
   */
  secrets(caller: Caller): SecretSource {
    const clock = this.#clock;
    const counts = this.counts[caller];
    const store = this.#secrets;
    const cache = new Map<string, { readonly value: unknown; readonly fetchedAtMs: number }>();
    return createLayoutSource(async (secretId, options) => {
      const cached = cache.get(secretId);
      if (
        cached &&
        !options.forceFetch &&
        clock.now() - cached.fetchedAtMs < DEFAULT_SECRET_MAX_AGE_SECONDS * 1000
      ) {
        return cached.value;
      }
      counts.secretFetches += 1;
      const value = await clock.track(async () => store.get(secretId), LATENCY_MS.secrets);
      if (value !== undefined) cache.set(secretId, { value, fetchedAtMs: clock.now() });
      return value;
    }, "Secrets Manager (modelled)");
  }

  /** A sleep on the virtual clock that a vend's marks note. */
  readonly sleep = (ms: number): Promise<void> => {
    const marks = vendMarks.getStore();
    if (marks && ms > 0) marks.sleptMs += ms;
    return this.#clock.sleep(ms);
  };

  close(): void {
    for (const client of this.#dynamo.values()) client.destroy();
  }
}
