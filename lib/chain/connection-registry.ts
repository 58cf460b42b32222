import { randomUUID } from "node:crypto";
import {
  type AttributeValue,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { ValidationError } from "../errors.js";
import { newConnectionItem, toRecord } from "./chain-item.js";
import type { ChainRecord, ConnectionConfig } from "./chain-record.js";
import { ChainTableClient, isConditionFailure } from "./chain-table-client.js";
import { connectionKey, guardKey } from "./table-definition.js";

/**
 * Connections and their guards: adding and removing connections, and the one-connection-per-
 * (client ID, Exact user) rule. Exact keeps one chain per app and user, so two connections
 * sharing one would fight over it.
 */
export class ConnectionRegistry extends ChainTableClient {
  /** Adds a connection with a new incarnation; refuses to overwrite one with the same ID. */
  async addConnection(config: ConnectionConfig, nowMs: number): Promise<ChainRecord> {
    const Item = newConnectionItem(config, randomUUID(), nowMs);
    try {
      await this.client.send(
        this.watch(
          new PutItemCommand({
            TableName: this.tableName,
            Item,
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        ),
      );
    } catch (error) {
      if (isConditionFailure(error)) {
        throw new ValidationError(`connection "${config.connectionId}" already exists; remove it first`, {
          cause: error,
        });
      }
      throw error;
    }
    return toRecord(Item);
  }

  /** Every connection, for the operator's `connection list` (a scan: never on a hot path). */
  async list(): Promise<ChainRecord[]> {
    const records: ChainRecord[] = [];
    let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        this.watch(
          new ScanCommand({
            TableName: this.tableName,
            ConsistentRead: true,
            FilterExpression: "begins_with(pk, :conn)",
            ExpressionAttributeValues: marshall({ ":conn": "CONN#" }),
            ExclusiveStartKey,
          }),
        ),
      );
      for (const item of page.Items ?? []) records.push(toRecord(item));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return records.sort((a, b) => a.connectionId.localeCompare(b.connectionId));
  }

  /** Removes a connection and frees its guard, so the Exact user can be connected again. */
  async removeConnection(record: ChainRecord): Promise<void> {
    await this.client.send(
      this.watch(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: marshall({ pk: connectionKey(record.connectionId) }),
        }),
      ),
    );
    if (record.exactUserId) await this.releaseGuard(record.clientId, record.exactUserId, record.connectionId);
  }

  /**
   * Claims the (client ID, Exact user) guard for a connection. Returns the connection that owns
   * the guard afterwards: ours, or the one that already held that chain.
   */
  async claimGuard(clientId: string, exactUserId: string, connectionId: string): Promise<string> {
    const Key = marshall({ pk: guardKey(clientId, exactUserId) });
    try {
      await this.client.send(
        this.watch(
          new PutItemCommand({
            TableName: this.tableName,
            Item: marshall({ pk: guardKey(clientId, exactUserId), connectionId, clientId, exactUserId }),
            ConditionExpression: "attribute_not_exists(pk) OR connectionId = :me",
            ExpressionAttributeValues: marshall({ ":me": connectionId }),
          }),
        ),
      );
      return connectionId;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const out = await this.client.send(
        this.watch(new GetItemCommand({ TableName: this.tableName, Key, ConsistentRead: true })),
      );
      const owner = out.Item ? (unmarshall(out.Item).connectionId as string) : undefined;
      // The guard vanished between the two calls (its connection was removed): try once more.
      return owner ?? this.claimGuard(clientId, exactUserId, connectionId);
    }
  }

  /** The connection holding the (client ID, Exact user) guard, if any. */
  async guardOwner(clientId: string, exactUserId: string): Promise<string | undefined> {
    const out = await this.client.send(
      this.watch(
        new GetItemCommand({
          TableName: this.tableName,
          Key: marshall({ pk: guardKey(clientId, exactUserId) }),
          ConsistentRead: true,
        }),
      ),
    );
    return out.Item ? (unmarshall(out.Item).connectionId as string) : undefined;
  }

  /**
   * Moves the (client ID, Exact user) guard from `from` to `to`, if `from` still holds it: for a
   * guard left behind by an interrupted `connection remove` or re-seed (its connection is gone,
   * or holds another user now). Returns the connection that holds the guard afterwards.
   */
  async replaceGuard(
    clientId: string,
    exactUserId: string,
    from: string,
    to: string,
  ): Promise<string | undefined> {
    try {
      await this.client.send(
        this.watch(
          new PutItemCommand({
            TableName: this.tableName,
            Item: marshall({ pk: guardKey(clientId, exactUserId), connectionId: to, clientId, exactUserId }),
            ConditionExpression: "connectionId = :from",
            ExpressionAttributeValues: marshall({ ":from": from }),
          }),
        ),
      );
      return to;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return this.guardOwner(clientId, exactUserId);
    }
  }

  async releaseGuard(clientId: string, exactUserId: string, connectionId: string): Promise<void> {
    try {
      await this.client.send(
        this.watch(
          new DeleteItemCommand({
            TableName: this.tableName,
            Key: marshall({ pk: guardKey(clientId, exactUserId) }),
            ConditionExpression: "connectionId = :me",
            ExpressionAttributeValues: marshall({ ":me": connectionId }),
          }),
        ),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  /**
   * Points a connection at another secret (`exact-broker connection set-secret` moving it out of
   * a combined secret, lib/secrets/secret-layout.ts), if it still names `from`. Touches nothing
   * else: the chain, its lease and its incarnation go on as they were.
   * @returns false when the connection is gone or names another secret by now
   */
  async setSecretId(connectionId: string, from: string, to: string): Promise<boolean> {
    try {
      await this.client.send(
        this.watch(
          new UpdateItemCommand({
            TableName: this.tableName,
            Key: marshall({ pk: connectionKey(connectionId) }),
            UpdateExpression: "SET #secretId = :to",
            ConditionExpression: "#secretId = :from",
            ExpressionAttributeNames: { "#secretId": "secretId" satisfies keyof ChainRecord },
            ExpressionAttributeValues: marshall({ ":from": from, ":to": to }),
          }),
        ),
      );
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return false;
    }
  }
}
