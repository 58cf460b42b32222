import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import type { ErrorBudget } from "./chain-record.js";
import { afterError } from "./error-budget.js";
import { LOGIN_FAILURES_PER_HOUR } from "./login-budget.js";
import { ChainTable, totpClaimKey } from "./table-definition.js";

/** What the broker knows of one Exact user's logins, whichever connection made them. */
export interface UserLogins {
  readonly lastStep?: number;
  /** Failed logins of the last hour (epoch ms), any connection of this user. */
  readonly loginFailures?: ErrorBudget;
  /** The reason of the last failed login (an EventReason), any connection. */
  readonly lastLoginFailure?: string;
  /** The TOTP step of that failed login, when its code was sent: it was the user's previous login if it equals `lastStep` before the next one. */
  readonly lastFailedStep?: number;
}

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
 *
 * The same item holds the user's failed logins: Exact locks the USER after about five failures
 * in a row, so the login budget (login-budget.ts) is kept per user as well as per chain; with
 * three connections of one user, per-chain budgets alone would allow nine.
 */
export class TotpStepClaims {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;

  constructor(options: { readonly tableName: string; readonly client?: DynamoDBClient }) {
    this.#tableName = options.tableName;
    this.#client = options.client ?? new DynamoDBClient({});
  }

  /**
   * The user's login record (case-insensitive name), strongly consistent: a claim or failure just
   * written elsewhere is seen. `lastStep` is a hint for a login's `lastTotpStep`, so it waits
   * before claiming instead of being refused first; the claim still decides. SDK errors propagate.
   */
  async read(username: string): Promise<UserLogins & { readonly version?: number }> {
    const out = await this.#client.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: marshall({ [ChainTable.partitionKey]: totpClaimKey(username) }),
        ConsistentRead: true,
      }),
    );
    const item = out.Item ? unmarshall(out.Item) : {};
    return {
      ...(typeof item[LAST_STEP] === "number" ? { lastStep: item[LAST_STEP] } : {}),
      ...(item.loginFailures ? { loginFailures: item.loginFailures as ErrorBudget } : {}),
      ...(typeof item.lastLoginFailure === "string" ? { lastLoginFailure: item.lastLoginFailure } : {}),
      ...(typeof item.lastFailedStep === "number" ? { lastFailedStep: item.lastFailedStep } : {}),
      ...(typeof item.failuresVersion === "number" ? { version: item.failuresVersion } : {}),
    };
  }

  /** The last step claimed for `username`, or undefined when none is stored (see {@link read}). */
  async lastStep(username: string): Promise<number | undefined> {
    return (await this.read(username)).lastStep;
  }

  /**
   * Adds a failed login of `username` (an optimistic read-modify-write on a version number; a
   * few attempts, since logins of one user are at least a TOTP step apart). SDK errors propagate.
   */
  async recordFailure(args: {
    readonly username: string;
    readonly reason: string;
    readonly nowMs: number;
    /** The TOTP step the failed login sent, if it got that far. */
    readonly step?: number;
  }): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const current = await this.read(args.username);
      try {
        await this.#client.send(
          new UpdateItemCommand({
            TableName: this.#tableName,
            Key: marshall({ [ChainTable.partitionKey]: totpClaimKey(args.username) }),
            UpdateExpression: `SET #failures = :failures, #last = :reason, #version = :next, #ttl = :ttl${args.step === undefined ? " REMOVE lastFailedStep" : ", lastFailedStep = :step"}`,
            ConditionExpression:
              current.version === undefined ? "attribute_not_exists(#version)" : "#version = :version",
            ExpressionAttributeNames: {
              "#failures": "loginFailures",
              "#last": "lastLoginFailure",
              "#version": "failuresVersion",
              "#ttl": ChainTable.ttlAttribute,
            },
            ExpressionAttributeValues: marshall({
              ":failures": afterError(current.loginFailures, args.nowMs, LOGIN_FAILURES_PER_HOUR),
              ":reason": args.reason,
              ":next": (current.version ?? 0) + 1,
              ":ttl": Math.floor(args.nowMs / 1000) + TOTP_CLAIM_RETENTION_SECONDS,
              ...(args.step === undefined ? {} : { ":step": args.step }),
              ...(current.version === undefined ? {} : { ":version": current.version }),
            }),
          }),
        );
        return;
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    }
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
    // The item may exist without a step: a failed login recorded before any code was sent.
    const unclaimed = "attribute_not_exists(#pk) OR attribute_not_exists(#lastStep)";
    const earlierStep = "#lastStep < :step";
    try {
      // An update, not a put: the user's failed logins live on the same item.
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#tableName,
          Key: marshall({ [ChainTable.partitionKey]: totpClaimKey(args.username) }),
          UpdateExpression: "SET #lastStep = :step, connectionId = :conn, claimedAtMs = :at, #ttl = :ttl",
          ConditionExpression: `${unclaimed} OR ${earlierStep}`,
          ExpressionAttributeNames: {
            "#pk": ChainTable.partitionKey,
            "#lastStep": LAST_STEP,
            "#ttl": ChainTable.ttlAttribute,
          },
          ExpressionAttributeValues: marshall({
            ":step": args.step,
            ":conn": args.connectionId,
            ":at": args.nowMs,
            ":ttl": Math.floor(args.nowMs / 1000) + TOTP_CLAIM_RETENTION_SECONDS,
          }),
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
