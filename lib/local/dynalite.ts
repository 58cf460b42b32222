import type { AddressInfo } from "node:net";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import { createTableInput } from "../chain/table-definition.js";

/** Credentials dynalite ignores but the SDK insists on. */
export const LOCAL_AWS_ENV = {
  AWS_REGION: "eu-west-1",
  AWS_ACCESS_KEY_ID: "local",
  AWS_SECRET_ACCESS_KEY: "local",
} as const;

export interface LocalDynamo {
  readonly endpoint: string;
  readonly client: DynamoDBClient;
  /** A fresh table with the broker's definition; returns its name. */
  createTable(name?: string): Promise<string>;
  close(): Promise<void>;
}

let tableCounter = 0;

/** An SDK client for a local DynamoDB endpoint, with the credentials dynalite ignores. */
export function localDynamoClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: LOCAL_AWS_ENV.AWS_REGION,
    credentials: {
      accessKeyId: LOCAL_AWS_ENV.AWS_ACCESS_KEY_ID,
      secretAccessKey: LOCAL_AWS_ENV.AWS_SECRET_ACCESS_KEY,
    },
  });
}

/** A real DynamoDB-compatible server (dynalite) in this process on 127.0.0.1, reached through the real SDK. */
export async function startDynalite(): Promise<LocalDynamo> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = localDynamoClient(endpoint);
  return {
    endpoint,
    client,
    async createTable(name) {
      tableCounter += 1;
      const tableName = name ?? `chains-${process.pid}-${tableCounter}`;
      await client.send(new CreateTableCommand(createTableInput(tableName)));
      return tableName;
    },
    async close() {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
