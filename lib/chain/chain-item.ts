import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { type ChainRecord, ChainStatus, type ConnectionConfig, DivisionPinnedBy } from "./chain-record.js";
import { connectionKey } from "./table-definition.js";

/*
 * A connection's DynamoDB item and its typed record (chain-record.ts): the one mapping between
 * them, used by every read and by the write that adds a connection.
 */

/** The record of a `CONN#` item (its key dropped; a fence never written reads as 0). */
export function toRecord(item: Record<string, AttributeValue>): ChainRecord {
  const raw = unmarshall(item) as ChainRecord & { pk: string };
  const { pk: _pk, ...record } = raw;
  return { ...record, leaseFence: record.leaseFence ?? 0 };
}

/** The item of a connection just added: NEW, generation 0, its operator-pinned division if given. */
export function newConnectionItem(
  config: ConnectionConfig,
  incarnation: string,
  nowMs: number,
): Record<string, AttributeValue> {
  const record: ChainRecord = {
    ...config,
    ...(config.pinnedDivision !== undefined
      ? { division: config.pinnedDivision, divisionPinnedBy: DivisionPinnedBy.Operator }
      : {}),
    incarnation,
    createdAtMs: nowMs,
    status: ChainStatus.New,
    statusChangedAtMs: nowMs,
    generation: 0,
    leaseFence: 0,
  };
  return marshall({ pk: connectionKey(config.connectionId), ...record }, { removeUndefinedValues: true });
}
