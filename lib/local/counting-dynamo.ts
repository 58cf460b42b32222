import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { localDynamoClient } from "./dynalite.js";

/** DynamoDB requests by command name (GetItem, UpdateItem, …), as the benchmark reports them. */
export type RequestCounts = Record<string, number>;

/** A DynamoDB client for `endpoint` that counts every request it sends, by command. */
export function countingDynamo(endpoint: string): {
  readonly client: DynamoDBClient;
  readonly counts: RequestCounts;
} {
  const counts: RequestCounts = {};
  const client = localDynamoClient(endpoint);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String(context.commandName ?? "unknown").replace(/Command$/, "");
      counts[name] = (counts[name] ?? 0) + 1;
      return next(args);
    },
    { step: "initialize", name: "countRequests" },
  );
  return { client, counts };
}

export function resetCounts(counts: RequestCounts): void {
  for (const key of Object.keys(counts)) delete counts[key];
}
