import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { appKey, ChainTable } from "./table-definition.js";

/** Why Exact rejects a whole app: its client secret (`invalid_client`) or its scopes. */
export type AppRejection = "invalid_client" | "scope_violated";

/**
 * What every chain of one app (client ID) at one Exact instance (base URL) shares: an outage of
 * Exact's token endpoint, a rejection of the app itself, and when a chain of the app last
 * refreshed. One `APP#<clientId>#<baseUrl>` item.
 */
export interface AppState {
  /** Exact stopped answering this app's token calls at (epoch ms); absent when it answers. */
  readonly outageSinceMs?: number;
  /** The next token call any chain of the app may risk, during an outage or a rejection (epoch ms). */
  readonly nextProbeAtMs?: number;
  /** The connection that holds the current probe. */
  readonly probeOwner?: string;
  /** When a chain of the app last got new tokens (epoch ms, to SUCCESS_RESOLUTION_MS). */
  readonly lastSuccessAtMs?: number;
  /**
   * The client secrets Exact rejected, by their hash (hashToken, never the secret). In AWS each
   * connection has a secret of its own, so while an operator fixes them one by one some chains
   * of the app hold the new secret and some the rejected one: each rejected secret is one entry
   * and one AppRejected event, and chains holding it are held until its own next probe; a chain
   * with another secret tries it, and an answer to that one leaves this entry alone.
   */
  readonly rejectedSecrets?: Readonly<Record<string, RejectedSecret>>;
  /**
   * Exact's REST API refuses the app's scopes ("Application Scope Violated" on `/current/Me`)
   * while its token endpoint may still answer: identity checks wait, one chain re-checks.
   */
  readonly apiRejected?: {
    readonly sinceMs: number;
    /** The next `/current/Me` any chain of the app may risk (epoch ms). */
    readonly nextCheckAtMs: number;
  };
}

/** A client secret Exact rejected, kept under its hash in {@link AppState.rejectedSecrets}. */
export interface RejectedSecret {
  readonly reason: AppRejection;
  readonly sinceMs: number;
  /** The next token call a chain holding this secret may risk (epoch ms). */
  readonly nextProbeAtMs: number;
}

/** lastSuccessAtMs is written at most this often (ms): each refresh would otherwise cost a write. */
export const SUCCESS_RESOLUTION_MS = 5 * 60_000;
/** How often one chain of a rejected app tries again (ms): Exact's policy or the app's scopes may be fixed. */
export const REJECTION_PROBE_MS = 15 * 60_000;

/**
 * How long after one probe of an outage the next one comes (ms), by the outage's age: soon at
 * first (a blip), every minute for a quarter of an hour (a chain is back within two minutes of
 * Exact), every five minutes after (back within ten). One chain probes for all, so ten chains of
 * one app spend one call a minute between them, whatever their number.
 */
export function probeIntervalMs(outageAgeMs: number): number {
  if (outageAgeMs < 60_000) return 10_000;
  if (outageAgeMs < 15 * 60_000) return 60_000;
  return 5 * 60_000;
}

/**
 * Outage pacing and app-level failures, per (app, Exact instance). Errors are spent where they
 * teach the most: during an outage one chain at a time asks Exact for all of them (whichever
 * comes first after `nextProbeAtMs`, so who pays rotates), and an app Exact rejects raises one
 * event, not one per chain. Bookkeeping only: a failure here never loses a chain (it is written
 * before a token call, or after the call's outcome is stored).
 */
export class AppStates {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;

  constructor(options: { readonly tableName: string; readonly client?: DynamoDBClient }) {
    this.#tableName = options.tableName;
    this.#client = options.client ?? new DynamoDBClient({});
  }

  async read(clientId: string, baseUrl: string): Promise<AppState> {
    const out = await this.#client.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: this.#key(clientId, baseUrl),
        ConsistentRead: true,
      }),
    );
    const { pk: _pk, ...state } = out.Item ? unmarshall(out.Item) : {};
    return state as AppState;
  }

  /** Takes the next probe for `connectionId` if it is due: true for exactly one of concurrent claimants. */
  async claimProbe(
    clientId: string,
    baseUrl: string,
    connectionId: string,
    nowMs: number,
    nextMs: number,
  ): Promise<boolean> {
    return this.#update(clientId, baseUrl, {
      UpdateExpression: "SET nextProbeAtMs = :next, probeOwner = :me",
      ConditionExpression: "attribute_not_exists(nextProbeAtMs) OR nextProbeAtMs <= :now",
      ExpressionAttributeValues: marshall({ ":next": nextMs, ":me": connectionId, ":now": nowMs }),
    });
  }

  /**
   * Exact did not process a token call: the outage starts (or goes on) and the next probe waits
   * `waitMs` (the pace of probeIntervalMs, or the answer's Retry-After if longer).
   */
  async outage(clientId: string, baseUrl: string, nowMs: number, waitMs: number): Promise<number> {
    const nextMs = nowMs + waitMs;
    await this.#update(clientId, baseUrl, {
      UpdateExpression: "SET outageSinceMs = if_not_exists(outageSinceMs, :now), nextProbeAtMs = :next",
      ExpressionAttributeValues: marshall({ ":now": nowMs, ":next": nextMs }),
    });
    return nextMs;
  }

  /** Exact answered a token call as Exact does: any outage is over; a success is noted (coarsely). */
  async answered(
    clientId: string,
    baseUrl: string,
    nowMs: number,
    state: AppState,
    success: boolean,
  ): Promise<void> {
    const inOutage = state.outageSinceMs !== undefined;
    // The success that ends an outage is noted exactly: chains that kept failing compare with it.
    const noteSuccess = success && (inOutage || (state.lastSuccessAtMs ?? 0) < nowMs - SUCCESS_RESOLUTION_MS);
    if (!inOutage && !noteSuccess) return;
    await this.#update(clientId, baseUrl, {
      UpdateExpression: `${noteSuccess ? "SET lastSuccessAtMs = :now " : ""}REMOVE outageSinceMs, nextProbeAtMs, probeOwner`,
      ...(noteSuccess ? { ExpressionAttributeValues: marshall({ ":now": nowMs }) } : {}),
    });
  }

  /**
   * Records that Exact rejects the app with the secret of hash `secretHash`; true when this call
   * recorded it (then the caller announces it, once per rejected secret). A rejection already
   * recorded only moves that secret's next probe on.
   */
  async rejected(
    clientId: string,
    baseUrl: string,
    reason: AppRejection,
    secretHash: string,
    nowMs: number,
  ): Promise<boolean> {
    const next = nowMs + REJECTION_PROBE_MS;
    // DynamoDB sets a map's entry only once the map exists ("The document path provided in the
    // update expression is invalid for update"): create it first, empty, if it is not there.
    await this.#update(clientId, baseUrl, {
      UpdateExpression: "SET rejectedSecrets = if_not_exists(rejectedSecrets, :none)",
      ExpressionAttributeValues: marshall({ ":none": {} }),
    });
    const recorded = await this.#update(clientId, baseUrl, {
      UpdateExpression: "SET rejectedSecrets.#hash = :rejected",
      ConditionExpression: "attribute_not_exists(rejectedSecrets.#hash)",
      ExpressionAttributeNames: { "#hash": secretHash },
      ExpressionAttributeValues: marshall({
        ":rejected": { reason, sinceMs: nowMs, nextProbeAtMs: next } satisfies RejectedSecret,
      }),
    });
    if (!recorded) {
      await this.#update(clientId, baseUrl, {
        UpdateExpression: "SET rejectedSecrets.#hash.nextProbeAtMs = :next",
        ConditionExpression: "attribute_exists(rejectedSecrets.#hash)",
        ExpressionAttributeNames: { "#hash": secretHash },
        ExpressionAttributeValues: marshall({ ":next": next }),
      });
    }
    return recorded;
  }

  /** Takes the next probe of a rejected secret if it is due: true for exactly one of concurrent claimants. */
  async claimRejectionProbe(
    clientId: string,
    baseUrl: string,
    secretHash: string,
    nowMs: number,
  ): Promise<boolean> {
    return this.#update(clientId, baseUrl, {
      UpdateExpression: "SET rejectedSecrets.#hash.nextProbeAtMs = :next",
      ConditionExpression: "rejectedSecrets.#hash.nextProbeAtMs <= :now",
      ExpressionAttributeNames: { "#hash": secretHash },
      ExpressionAttributeValues: marshall({ ":next": nowMs + REJECTION_PROBE_MS, ":now": nowMs }),
    });
  }

  /**
   * Exact's REST API refused the app's scopes: recorded with the next re-check; true when this
   * call started the rejection (then the caller announces it, once).
   */
  async apiRejected(clientId: string, baseUrl: string, nowMs: number): Promise<boolean> {
    const nextCheckAtMs = nowMs + REJECTION_PROBE_MS;
    const started = await this.#update(clientId, baseUrl, {
      UpdateExpression: "SET apiRejected = :rejected",
      ConditionExpression: "attribute_not_exists(apiRejected)",
      ExpressionAttributeValues: marshall({ ":rejected": { sinceMs: nowMs, nextCheckAtMs } }),
    });
    if (!started) {
      await this.#update(clientId, baseUrl, {
        UpdateExpression: "SET apiRejected.nextCheckAtMs = :next",
        ConditionExpression: "attribute_exists(apiRejected)",
        ExpressionAttributeValues: marshall({ ":next": nextCheckAtMs }),
      });
    }
    return started;
  }

  /** Takes the next re-check of a REST API rejection if it is due: true for exactly one of concurrent claimants. */
  async claimApiCheck(clientId: string, baseUrl: string, nowMs: number): Promise<boolean> {
    return this.#update(clientId, baseUrl, {
      UpdateExpression: "SET apiRejected.nextCheckAtMs = :next",
      ConditionExpression: "apiRejected.nextCheckAtMs <= :now",
      ExpressionAttributeValues: marshall({ ":next": nowMs + REJECTION_PROBE_MS, ":now": nowMs }),
    });
  }

  /** `/current/Me` answered a user of the app again: its REST API rejection is over. */
  async apiAccepted(clientId: string, baseUrl: string): Promise<void> {
    await this.#update(clientId, baseUrl, { UpdateExpression: "REMOVE apiRejected" });
  }

  /**
   * Exact answered a call made with the rejected secret of hash `secretHash` as it answers an
   * app it accepts (fixed scopes, a secret reinstated): that secret's rejection is over.
   */
  async accepted(clientId: string, baseUrl: string, secretHash: string): Promise<void> {
    await this.#update(clientId, baseUrl, {
      UpdateExpression: "REMOVE rejectedSecrets.#hash",
      ConditionExpression: "attribute_exists(rejectedSecrets.#hash)",
      ExpressionAttributeNames: { "#hash": secretHash },
    });
  }

  #key(clientId: string, baseUrl: string) {
    return marshall({ [ChainTable.partitionKey]: appKey(clientId, baseUrl) });
  }

  async #update(
    clientId: string,
    baseUrl: string,
    expression: Pick<
      ConstructorParameters<typeof UpdateItemCommand>[0],
      "UpdateExpression" | "ConditionExpression" | "ExpressionAttributeNames" | "ExpressionAttributeValues"
    >,
  ): Promise<boolean> {
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#tableName,
          Key: this.#key(clientId, baseUrl),
          ...expression,
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
