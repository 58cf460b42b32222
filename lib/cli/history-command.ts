import type { ChainStore } from "../chain/chain-store.js";
import type { HistoryEntry } from "../chain/history-entry.js";
import { ConnectionNotFound, ValidationError } from "../errors.js";
import { ExitCode } from "./exit-codes.js";

/** `--limit`'s default and largest value: entries shown, newest first. */
export const DEFAULT_HISTORY_LIMIT = 50;
export const MAX_HISTORY_LIMIT = 1000;

/** One line of `exact-broker history --json`: an entry, absent fields as null. Never a token. */
export interface HistoryRow {
  /** ISO 8601, when the outcome's write was made. */
  readonly at: string;
  readonly generation: number;
  readonly door: string;
  readonly purpose: string | null;
  readonly outcome: string;
  readonly reason: string | null;
  /** The chain's status after the outcome. */
  readonly status: string;
  readonly caller: string | null;
  /** 16 hex of the SHA-256 of the refresh token the chain held after the outcome. */
  readonly refreshHash: string | null;
  /** The other connection of a hand-over. */
  readonly peer: string | null;
}

/** `--limit N`: a whole number from 1 to MAX_HISTORY_LIMIT. */
export function parseHistoryLimit(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_HISTORY_LIMIT;
  const limit = /^[1-9][0-9]*$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(limit <= MAX_HISTORY_LIMIT)) {
    throw new ValidationError(`--limit must be a whole number from 1 to ${MAX_HISTORY_LIMIT}, got "${raw}"`);
  }
  return limit;
}

export function historyRow(entry: HistoryEntry): HistoryRow {
  return {
    at: new Date(entry.atMs).toISOString(),
    generation: entry.generation,
    door: entry.door,
    purpose: entry.purpose ?? null,
    outcome: entry.outcome,
    reason: entry.reason ?? null,
    status: entry.status,
    caller: entry.caller ?? null,
    refreshHash: entry.refreshHash ?? null,
    peer: entry.peer ?? null,
  };
}

const COLUMNS: ReadonlyArray<readonly [string, (row: HistoryRow) => string | number | null]> = [
  ["WHEN", (row) => row.at],
  ["GEN", (row) => row.generation],
  ["DOOR", (row) => row.door],
  ["PURPOSE", (row) => row.purpose],
  ["OUTCOME", (row) => row.outcome],
  ["REASON", (row) => row.reason],
  ["STATUS", (row) => row.status],
  ["PEER", (row) => row.peer],
  ["REFRESH HASH", (row) => row.refreshHash],
  ["CALLER", (row) => row.caller],
];

/** The rows as an aligned table, a header first; `-` for an absent field. */
export function formatHistory(rows: readonly HistoryRow[]): string[] {
  const cells = rows.map((row) => COLUMNS.map(([, cell]) => String(cell(row) ?? "-")));
  const header = COLUMNS.map(([name]) => name);
  const widths = header.map((name, i) => Math.max(name.length, ...cells.map((line) => line[i]?.length ?? 0)));
  return [header, ...cells].map((line) =>
    line
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd(),
  );
}

/**
 * `exact-broker history --id X [--json] [--limit N]`: the connection's history, newest first
 * (history-store.ts reads it: its history items and the entries its item still carries).
 * `--json` prints one JSON array of {@link HistoryRow}, like `status --json` prints one object.
 * @throws ConnectionNotFound (exit 3) when there is no such connection
 */
export async function showHistory(
  store: ChainStore,
  connectionId: string,
  options: { readonly json: boolean; readonly limit: number },
  io: { readonly out: (line: string) => void },
): Promise<number> {
  const record = await store.get(connectionId);
  if (!record) throw new ConnectionNotFound(`connection "${connectionId}" does not exist`);
  const rows = (await store.history.read(record, options.limit)).map(historyRow);
  if (options.json) {
    io.out(JSON.stringify(rows, null, 2));
    return ExitCode.Done;
  }
  if (rows.length === 0) {
    io.out(
      `connection "${connectionId}" has no history yet (generation ${record.generation}, ${record.status}); ` +
        "entries start with its next chain start, refresh, probe, break or login",
    );
    return ExitCode.Done;
  }
  for (const line of formatHistory(rows)) io.out(line);
  return ExitCode.Done;
}
