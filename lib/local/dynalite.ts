import type { IncomingMessage, ServerResponse } from "node:http";
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

/**
 * An SDK client for a local DynamoDB endpoint, with the credentials dynalite ignores. Clock-skew
 * correction is off: dynalite checks no signature date, and on a fake clock (startDynalite's
 * `now`) its `Date` header is minutes from `Date.now()`, which the SDK takes for skew of 4 minutes
 * or more and answers by resending every request that failed, a lost conditional write included.
 */
export function localDynamoClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: LOCAL_AWS_ENV.AWS_REGION,
    credentials: {
      accessKeyId: LOCAL_AWS_ENV.AWS_ACCESS_KEY_ID,
      secretAccessKey: LOCAL_AWS_ENV.AWS_SECRET_ACCESS_KEY,
    },
    disableClockSkewCorrection: true,
  });
}

/**
 * A real DynamoDB-compatible server (dynalite) in this process on 127.0.0.1, reached through the real SDK.
 * @param options.now the clock (ms since the epoch) every response's `Date` header reports, so a
 *   broker on a fake clock measures no skew against it (lib/chain/clock-skew.ts). @default the
 *   real clock (Node writes the header).
 */
export async function startDynalite(options: { readonly now?: () => number } = {}): Promise<LocalDynamo> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const { now } = options;
  if (now) {
    // Ahead of dynalite's own listener; Node writes its own Date only when none is set. The
    // moment the request arrives lies between the client's send and receipt, as a Date must.
    server.prependListener("request", (_request: IncomingMessage, response: ServerResponse) => {
      response.setHeader("date", new Date(now()).toUTCString());
    });
  }
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
