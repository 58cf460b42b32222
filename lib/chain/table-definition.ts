import type { CreateTableCommandInput } from "@aws-sdk/client-dynamodb";

/**
 * The broker's one DynamoDB table, defined once for `exact-broker table create` and the CDK stack.
 *
 * Items:
 * - `CONN#<connectionId>`: a connection's configuration and chain state (see chain-record.ts).
 * - `GUARD#<clientId>#<exactUserId>`: Exact keeps one chain per (app, user); the guard makes sure
 *   only one connection owns it.
 * - `NONCE#<nonce>`: single-use markers for onboarding links, removed by TTL.
 * - `TOTP#<username, lower case>`: the last TOTP step claimed for logins as that Exact user and
 *   the user's failed logins, shared by every connection of the user (see totp-step-claims.ts),
 *   removed by TTL.
 * - `APP#<clientId>#<baseUrl>`: what the chains of one app at one Exact instance share: outage
 *   pacing, the app's rejection, its last success (see app-states.ts).
 * - `HIST#<connectionId>#<incarnation>#<generation>`: a connection's audit history, one item per
 *   generation a lease reached (see history-store.ts), removed by TTL after HISTORY_DAYS.
 * - `GRANTS#<connectionId>`: the AWS principals token-vend serves that connection to (two string
 *   sets, the CLI's and the deploy-written ones; `GRANTS#*` holds the all-connections grants), see
 *   lib/auth/grant-store.ts.
 */
export const ChainTable = {
  partitionKey: "pk",
  /**
   * Sparse index for the scheduled refresher: only chains that need proactive work carry
   * `dueShard`, so the refresher queries "due before T" instead of scanning.
   */
  dueIndex: {
    name: "due",
    partitionKey: "dueShard",
    sortKey: "dueAtMs",
  },
  /** The `dueShard` of a chain due later than the dispatcher's lead: each tick reads its own slice of it. */
  dueShardValue: "due",
  /**
   * The `dueShard` of a chain whose due time was set within the dispatcher's lead, where a tick's
   * slice may already have passed (refresh-dispatch.ts dueIndexFields): each tick reads all of it
   * that is due, so nothing set there waits to be found overdue. Small: exceptional states (a
   * chain made hot just before its window, a check due now, a short backoff).
   */
  catchUpShardValue: "catch-up",
  /** DynamoDB TTL wants epoch seconds. */
  ttlAttribute: "expiresAtEpochSec",
} as const;

export const connectionKey = (connectionId: string): string => `CONN#${connectionId}`;
/** The refresh dispatcher's cursor (dispatch-cursor.ts): one item for the table. */
export const dispatchCursorKey = "DISPATCH#refresh";
export const guardKey = (clientId: string, exactUserId: string): string => `GUARD#${clientId}#${exactUserId}`;
/** One item per (app, Exact instance): outage pacing and app-level failures (app-states.ts). */
export const appKey = (clientId: string, baseUrl: string): string => `APP#${clientId}#${baseUrl}`;
export const nonceKey = (nonce: string): string => `NONCE#${nonce}`;
/** A connection's history item for one generation; the incarnation keeps a re-added connection's apart. */
export const historyKey = (connectionId: string, incarnation: string, generation: number): string =>
  `HIST#${connectionId}#${incarnation}#${generation}`;
/** The principals granted one connection; `*` (never a connection ID) is every connection. */
export const grantsKey = (connectionId: string): string => `GRANTS#${connectionId}`;
/** Exact user names are e-mail addresses, compared without case: one claim per person. */
export const totpClaimKey = (username: string): string => `TOTP#${username.trim().toLowerCase()}`;

/** CreateTable input for the CLI (and tests). On-demand billing, like the CDK stack. */
export function createTableInput(tableName: string): CreateTableCommandInput {
  const { partitionKey, dueIndex } = ChainTable;
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [
      { AttributeName: partitionKey, AttributeType: "S" },
      { AttributeName: dueIndex.partitionKey, AttributeType: "S" },
      { AttributeName: dueIndex.sortKey, AttributeType: "N" },
    ],
    KeySchema: [{ AttributeName: partitionKey, KeyType: "HASH" }],
    GlobalSecondaryIndexes: [
      {
        IndexName: dueIndex.name,
        KeySchema: [
          { AttributeName: dueIndex.partitionKey, KeyType: "HASH" },
          { AttributeName: dueIndex.sortKey, KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "KEYS_ONLY" },
      },
    ],
  };
}
