import { spawn } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import { createTableInput } from "../chain/table-definition.js";

/** The header a client on a fake clock sends its time in, to dynalite in its own process (dynalite-child.ts). */
export const VIRTUAL_NOW_HEADER = "x-virtual-now";

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

/**
 * Sends the caller's clock with every request (`x-virtual-now`), for dynalite in its own process
 * (startDynaliteProcess) to report in its `Date` header.
 */
export function sendVirtualNow(client: DynamoDBClient, now: () => number): void {
  client.middlewareStack.add(
    (next) => (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers[VIRTUAL_NOW_HEADER] = String(now());
      return next(args);
    },
    { step: "build", name: "sendVirtualNow" },
  );
}

/**
 * dynalite in a child process (lib/local/dynalite-child.ts), reached through the
 * real SDK: the same server as {@link startDynalite}, on another core. With `now`, this module's
 * `client` sends that clock with each request and the child reports it in its `Date` header;
 * other clients on the endpoint call {@link sendVirtualNow} themselves.
 */
export async function startDynaliteProcess(
  options: { readonly now?: () => number } = {},
): Promise<LocalDynamo> {
  // From source (tsx) the child is TypeScript too; from dist/ it is compiled beside this module.
  const fromSource = import.meta.url.endsWith(".ts");
  const childPath = new URL(`./dynalite-child.${fromSource ? "ts" : "js"}`, import.meta.url).pathname;
  const child = spawn(process.execPath, [...(fromSource ? ["--import", "tsx"] : []), childPath], {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, NODE_NO_WARNINGS: "1" },
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`dynalite child exited (${code}) before listening`)));
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
      const line = out.split("\n")[0];
      if (out.includes("\n") && line) resolve((JSON.parse(line) as { port: number }).port);
    });
  });
  child.removeAllListeners("exit");
  const endpoint = `http://127.0.0.1:${port}`;
  const client = localDynamoClient(endpoint);
  if (options.now) sendVirtualNow(client, options.now);
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
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.stdin?.end();
      await exited;
    },
  };
}
