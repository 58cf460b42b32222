import { DescribeTableCommand } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { localDynamoClient, sendVirtualNow, startDynaliteProcess } from "../../lib/local/dynalite.js";

/** A fake clock far from real time: the child must report it, not its own. */
const VIRTUAL_NOW_MS = Date.UTC(2031, 4, 6, 7, 8, 9);

describe("startDynaliteProcess (dynalite in a child process, bench/scale.ts)", () => {
  it("serves the broker's table and reports the caller's clock in its Date header", {
    timeout: 30_000,
  }, async () => {
    const dynamo = await startDynaliteProcess({ now: () => VIRTUAL_NOW_MS });
    try {
      const tableName = await dynamo.createTable();
      const other = localDynamoClient(dynamo.endpoint);
      sendVirtualNow(other, () => VIRTUAL_NOW_MS + 60_000);
      let dateHeader: string | undefined;
      other.middlewareStack.add(
        (next) => async (args) => {
          const out = await next(args);
          dateHeader = (out.response as { headers?: Record<string, string> }).headers?.date;
          return out;
        },
        { step: "deserialize", name: "readDate" },
      );

      const described = await other.send(new DescribeTableCommand({ TableName: tableName }));

      expect(described.Table?.GlobalSecondaryIndexes?.[0]?.IndexName).toBe("due");
      expect(dateHeader).toBe(new Date(VIRTUAL_NOW_MS + 60_000).toUTCString());
      other.destroy();
    } finally {
      await dynamo.close();
    }
  });
});
