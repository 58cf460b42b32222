import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { type ChainRecord, ChainStatus, type ConnectionConfig, DivisionPinnedBy } from "./chain-record.js";
import { connectionKey } from "./table-definition.js";

/*
 * A connection's DynamoDB item and its typed record (chain-record.ts): the one mapping between
 * them, used by every read, by every update's SET values (chain-table-client.ts) and by the
 * writes of whole items (a connection added, bench:scale's fast seed).
 *
 * The two ciphertexts are stored as binary (B), not base64 (S): DynamoDB bills a write per
 * started kilobyte of the item, and base64 is a quarter overhead (with Exact's ~1,500- and
 * ~900-character tokens, about 1 KB of a ~5 KB item: a unit on every full-item write). Only
 * this file sees the bytes. Records keep the base64 string the cipher takes and returns, because
 * the engine's readers test it, spread it into retired chains and hand it back to the cipher:
 * bytes end to end would have changed each of them and the cipher for not one byte more saved.
 * Items written before keep their S values until their next token write; both read alike.
 */

/** The record's attributes that hold a ciphertext, at its top level and in a retired chain. */
const CIPHERTEXT_ATTRIBUTES = ["accessCt", "refreshCt"] as const;

type Attributes = Readonly<Record<string, unknown>>;

/**
 * Attributes as they are stored: each ciphertext as its bytes, also in the retired chain a
 * verification note keeps. For a new item and for an update's SET values; other values as given.
 */
export function toStoredAttributes(attributes: Attributes): Record<string, unknown> {
  const stored: Record<string, unknown> = { ...attributes };
  for (const name of CIPHERTEXT_ATTRIBUTES) {
    const value = stored[name];
    if (typeof value === "string") stored[name] = Buffer.from(value, "base64");
  }
  const note = stored.verification as Attributes | undefined;
  if (isMap(note) && isMap(note.retired)) {
    stored.verification = { ...note, retired: toStoredAttributes(note.retired) };
  }
  return stored;
}

/** The inverse of {@link toStoredAttributes}; a ciphertext stored as a string (before binary) is kept. */
function fromStoredAttributes(attributes: Attributes): Record<string, unknown> {
  const record: Record<string, unknown> = { ...attributes };
  for (const name of CIPHERTEXT_ATTRIBUTES) {
    const value = record[name];
    if (value instanceof Uint8Array) {
      record[name] = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64");
    }
  }
  const note = record.verification as Attributes | undefined;
  if (isMap(note) && isMap(note.retired)) {
    record.verification = { ...note, retired: fromStoredAttributes(note.retired) };
  }
  return record;
}

function isMap(value: unknown): value is Attributes {
  return typeof value === "object" && value !== null && !(value instanceof Uint8Array);
}

/** The record of a `CONN#` item (its key dropped; a fence never written reads as 0). */
export function toRecord(item: Record<string, AttributeValue>): ChainRecord {
  const raw = fromStoredAttributes(unmarshall(item)) as unknown as ChainRecord & { pk: string };
  const { pk: _pk, ...record } = raw;
  return { ...record, leaseFence: record.leaseFence ?? 0 };
}

/** A chain's whole item, as a PutItem writes it (the ciphertexts binary). */
export function toItem(record: ChainRecord): Record<string, AttributeValue> {
  return marshall(toStoredAttributes({ pk: connectionKey(record.connectionId), ...record }), {
    removeUndefinedValues: true,
  });
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
  return toItem(record);
}
