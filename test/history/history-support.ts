import { type DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import type { HistoryEntry } from "../../lib/chain/history-entry.js";
import { historyKey } from "../../lib/chain/table-definition.js";
import { localDynamoClient } from "../../lib/local/dynalite.js";
import type { Fixture } from "../support/fixture.js";

/** One DynamoDB request as a client sent it: the command and the key it named, if one. */
export interface SentRequest {
  readonly command: string;
  readonly pk?: string;
}

/**
 * A client for the fixture's dynalite that records every request (command and key), and can make
 * the history writes fail, as if the process died between a commit and its history write.
 */
export function recordingDynamo(fx: Fixture): {
  readonly client: DynamoDBClient;
  readonly sent: SentRequest[];
  failHistoryWrites: boolean;
} {
  const client = localDynamoClient(fx.stack.dynamo.endpoint);
  const state = { client, sent: [] as SentRequest[], failHistoryWrites: false };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String(context.commandName ?? "unknown").replace(/Command$/, "");
      const key = (args.input as { Key?: { pk?: { S?: string } } }).Key;
      const pk = key?.pk?.S;
      state.sent.push({ command, ...(pk !== undefined ? { pk } : {}) });
      if (state.failHistoryWrites && command === "UpdateItem" && pk?.startsWith("HIST#")) {
        throw new Error("injected: the process died before its history write");
      }
      return next(args);
    },
    { step: "initialize", name: "recordRequests" },
  );
  return state;
}

/** History writes among `sent`: UpdateItems on `HIST#` keys. */
export function historyWrites(sent: readonly SentRequest[]): string[] {
  return sent.filter((r) => r.command === "UpdateItem" && r.pk?.startsWith("HIST#")).map((r) => r.pk ?? "");
}

/** The history item of `generation` as stored, or undefined. */
export async function historyItem(
  fx: Fixture,
  generation: number,
): Promise<{ entries: HistoryEntry[]; expiresAtEpochSec: number; generation: number } | undefined> {
  const record = await fx.record();
  const out = await fx.stack.dynamo.client.send(
    new GetItemCommand({
      TableName: fx.stack.tableName,
      Key: marshall({ pk: historyKey(record.connectionId, record.incarnation ?? "", generation) }),
      ConsistentRead: true,
    }),
  );
  return out.Item
    ? (unmarshall(out.Item) as { entries: HistoryEntry[]; expiresAtEpochSec: number; generation: number })
    : undefined;
}

/** The connection's history, newest first, as `exact-broker history` reads it: [generation, outcome] pairs. */
export async function outcomes(fx: Fixture, connectionId = fx.conn.connectionId): Promise<string[]> {
  const store = fx.store();
  const record = await store.get(connectionId);
  if (!record) throw new Error(`connection ${connectionId} is gone`);
  const entries = await store.history.read(record, 100);
  return entries.map((e) => `${e.generation} ${e.outcome}${e.reason ? ` (${e.reason})` : ""}`);
}
