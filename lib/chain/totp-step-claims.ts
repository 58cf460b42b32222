import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { ChainTable, totpClaimKey } from "./table-definition.js";

/**
 * How long a claim stays after it was made. Only the latest step matters and steps only grow, so
 * a day is plenty: by then the next login's step is thousands of steps further on anyway.
 */
export const TOTP_CLAIM_RETENTION_SECONDS = 24 * 60 * 60;

const LAST_STEP = "lastStep";

/**
 * The TOTP steps logins have claimed, one `TOTP#<username>` item per Exact user in the broker's
 * table, holding the last step claimed (`lastStep`, floor(epochSeconds / 30)), which connection
 * claimed it (`connectionId`, for operators), when (`claimedAtMs`, epoch ms), and a TTL
 * (`expiresAtEpochSec`, epoch seconds). Never a code or a secret.
 *
 * Why: Exact refuses a code of a 30 s step the same USER already logged in with, and every
 * refusal counts towards the account lock (exact-online.md, "Logging in as the user"; the
 * simulator's `totp_reused`). One Exact user may back several connections (one per OAuth app),
 * each with its own chain, so the step a chain last used (`lastTotpStep` on the chain item) does
 * not stop two heals of one user in the same step. The claim is keyed by the user name, which the
 * connection's secret holds before any login (also for implicit-mode connections), not by the
 * Exact user id, which is only known after a login.
 *
 * A login claims the step whose code it is about to send, before generating and sending it; a
 * refused claim means another login of the same user took that step (or a later one), and the
 * login waits for the next step.
 */
export class TotpStepClaims {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;

  constructor(options: { readonly tableName: string; readonly client?: DynamoDBClient }) {
    this.#tableName = options.tableName;
    this.#client = options.client ?? new DynamoDBClient({});
  }

  /**
   * The last step claimed for `username` (case-insensitive), or undefined when none is stored.
   * Strongly consistent: a claim that just succeeded elsewhere is seen. A hint for a login's
   * `lastTotpStep`, so it waits before claiming instead of being refused first; the claim still
   * decides. SDK errors propagate.
   */
  async lastStep(username: string): Promise<number | undefined> {
    const out = await this.#client.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: marshall({ [ChainTable.partitionKey]: totpClaimKey(username) }),
        ProjectionExpression: "#lastStep",
        ExpressionAttributeNames: { "#lastStep": LAST_STEP },
        ConsistentRead: true,
      }),
    );
    const value = out.Item ? unmarshall(out.Item)[LAST_STEP] : undefined;
    return typeof value === "number" ? value : undefined;
  }

  /**
   * Claims `step` for logins as `username` (case-insensitive). True when this call took it: no
   * claim existed, or the stored step is lower. False when the same or a later step was claimed
   * already (a login of this user used it, or is about to). Of concurrent claims of one step
   * exactly one returns true (none if a later step was claimed already). SDK errors other than
   * the refused condition propagate.
   *
   *   step:        N-1        |          N          |         N+1
   *   login A:                  claim N ✓ ─ code N ─► Exact accepts
   *   login B:                  claim N ✗ ─ wait ──── claim N+1 ✓ ─ code N+1 ─► Exact accepts
   *   without:                  login B sends code N ─► Exact refuses (totp_reused), counts to lock
   */
  async claim(args: {
    readonly username: string;
    /** floor(epochSeconds / 30) of the code about to be sent. */
    readonly step: number;
    /** The connection whose login claims the step; stored for operators only. */
    readonly connectionId: string;
    readonly nowMs: number;
  }): Promise<boolean> {
    const unclaimed = "attribute_not_exists(#pk)";
    const earlierStep = "#lastStep < :step";
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#tableName,
          Item: marshall({
            [ChainTable.partitionKey]: totpClaimKey(args.username),
            [LAST_STEP]: args.step,
            connectionId: args.connectionId,
            claimedAtMs: args.nowMs,
            [ChainTable.ttlAttribute]: Math.floor(args.nowMs / 1000) + TOTP_CLAIM_RETENTION_SECONDS,
          }),
          ConditionExpression: `${unclaimed} OR ${earlierStep}`,
          ExpressionAttributeNames: { "#pk": ChainTable.partitionKey, "#lastStep": LAST_STEP },
          ExpressionAttributeValues: marshall({ ":step": args.step }),
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
