import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ChainTable, totpClaimKey } from "../../lib/chain/table-definition.js";
import { TOTP_CLAIM_RETENTION_SECONDS, TotpStepClaims } from "../../lib/chain/totp-step-claims.js";
import { type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";

const STEP = 59_000_000;
const NOW_MS = STEP * 30_000 + 12_345;

describe("TotpStepClaims", () => {
  let dynamo: LocalDynamo;
  let tableName: string;
  let claims: TotpStepClaims;
  let userCounter = 0;
  /** A user name no other test touches. */
  let user: string;

  beforeAll(async () => {
    dynamo = await startDynalite();
    tableName = await dynamo.createTable();
    claims = new TotpStepClaims({ tableName, client: dynamo.client });
  });
  afterAll(() => dynamo.close());
  beforeEach(() => {
    userCounter += 1;
    user = `user-${userCounter}@example.com`;
  });

  const claim = (step: number, username = user, connectionId = "conn-a") =>
    claims.claim({ username, step, connectionId, nowMs: NOW_MS });

  describe("claim", () => {
    it("grants the first claim of a user", async () => {
      expect(await claim(STEP)).toBe(true);
    });

    it("grants the first claim of a user whose only record is a failed login that sent no code", async () => {
      await claims.recordFailure({ username: user, reason: "login_page_changed", nowMs: NOW_MS });

      expect(await claim(STEP)).toBe(true);
      expect(await claims.lastStep(user)).toBe(STEP);
    });

    it("refuses the same step again, also from another connection", async () => {
      await claim(STEP, user, "conn-a");

      expect(await claim(STEP, user, "conn-a")).toBe(false);
      expect(await claim(STEP, user, "conn-b")).toBe(false);
    });

    it("refuses a step lower than the one claimed", async () => {
      await claim(STEP);

      expect(await claim(STEP - 1)).toBe(false);
    });

    it("grants a higher step, which then is the one stored", async () => {
      await claim(STEP);

      expect(await claim(STEP + 1)).toBe(true);
      expect(await claim(STEP)).toBe(false);
      expect(await claims.lastStep(user)).toBe(STEP + 1);
    });

    it("lets exactly one of 10 concurrent claims of one step win", async () => {
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => claim(STEP, user, `conn-${i}`)));

      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it.each([
      ["upper case", (name: string) => name.toUpperCase()],
      ["surrounding spaces", (name: string) => `  ${name} `],
    ])("treats user names differing in %s as one user", async (_name, variant) => {
      await claim(STEP, user);

      expect(await claim(STEP, variant(user))).toBe(false);
      expect(await claims.lastStep(variant(user))).toBe(STEP);
    });

    it("keeps different users apart", async () => {
      await claim(STEP, user);

      expect(await claim(STEP, `other-${user}`)).toBe(true);
      expect(await claim(STEP + 1, user)).toBe(true);
    });

    it("stores the step, who claimed it and when, and a TTL in epoch seconds a day later; no code or secret", async () => {
      await claim(STEP, user, "conn-a");

      const out = await dynamo.client.send(
        new GetItemCommand({
          TableName: tableName,
          Key: marshall({ [ChainTable.partitionKey]: totpClaimKey(user) }),
          ConsistentRead: true,
        }),
      );

      expect(unmarshall(out.Item ?? {})).toEqual({
        pk: `TOTP#${user}`,
        lastStep: STEP,
        connectionId: "conn-a",
        claimedAtMs: NOW_MS,
        [ChainTable.ttlAttribute]: Math.floor(NOW_MS / 1000) + TOTP_CLAIM_RETENTION_SECONDS,
      });
      expect(TOTP_CLAIM_RETENTION_SECONDS).toBe(86_400);
    });

    it("lets an SDK failure other than the refused condition propagate", async () => {
      const missingTable = new TotpStepClaims({ tableName: "no-such-table", client: dynamo.client });

      await expect(
        missingTable.claim({ username: user, step: STEP, connectionId: "conn-a", nowMs: NOW_MS }),
      ).rejects.toMatchObject({ name: "ResourceNotFoundException" });
    });
  });

  describe("lastStep", () => {
    it("is undefined for a user never claimed", async () => {
      expect(await claims.lastStep(user)).toBeUndefined();
    });

    it("reads back the step just claimed", async () => {
      await claim(STEP);

      expect(await claims.lastStep(user)).toBe(STEP);
    });
  });
});
