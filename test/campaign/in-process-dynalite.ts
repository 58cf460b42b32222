import { EventEmitter } from "node:events";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type HttpHandler, type HttpRequest, HttpResponse } from "@smithy/core/protocols";
import dynalite from "dynalite";
import { createTableInput } from "../../lib/chain/table-definition.js";
import { LOCAL_AWS_ENV } from "../../lib/local/dynalite.js";

/**
 * The SDK's HTTP hop to dynalite without a socket: each request the SDK built (signed, with its
 * headers and JSON body) is handed to dynalite's own request listener as Node's server would hand
 * it, and dynalite's answer (status, headers, body) comes back as the SDK's HTTP handler would
 * return it. Everything either side does is the same as over loopback TCP but the socket: the
 * SDK's middleware (serialization, signing, retries, the broker's clock-skew monitor reading the
 * `date` header, the CRC32 check), and dynalite's validation, conditions and storage.
 *
 * A campaign makes tens of thousands of DynamoDB calls per file, each costing about a third more
 * CPU over loopback HTTP (both ends' HTTP stacks) than this way. The campaign's faults are
 * injected at the tap (fault-plan.ts), around the SDK's `send`, never in the transport, so the
 * transport is not what a case tests.
 */
class InProcessHandler implements HttpHandler {
  readonly metadata = { handlerProtocol: "http/1.1" };
  readonly #server: Server;

  constructor(server: Server) {
    this.#server = server;
  }

  handle(request: HttpRequest): Promise<{ response: HttpResponse }> {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(request.query ?? {})) {
      for (const one of Array.isArray(value) ? value : [value]) if (one !== null) query.append(name, one);
    }
    const search = query.toString();
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase()] = value;
    const body =
      request.body === undefined || request.body === null ? Buffer.alloc(0) : Buffer.from(request.body);
    headers["content-length"] ??= String(body.length);
    const incoming = Object.assign(new EventEmitter(), {
      method: request.method,
      url: `${request.path}${search ? `?${search}` : ""}`,
      headers,
    });
    return new Promise((resolve) => {
      const answered: Record<string, string> = {};
      const response = {
        statusCode: 200,
        setHeader(name: string, value: unknown) {
          answered[name.toLowerCase()] = String(value);
        },
        getHeader(name: string) {
          return answered[name.toLowerCase()];
        },
        end(data?: string | Buffer) {
          const chunks = data === undefined ? [] : [Buffer.from(data)];
          resolve({
            response: new HttpResponse({
              statusCode: response.statusCode,
              headers: answered,
              body: Readable.from(chunks),
            }),
          });
        },
      };
      this.#server.emit(
        "request",
        incoming as unknown as IncomingMessage,
        response as unknown as ServerResponse,
      );
      // As a socket delivers it: the body after the listeners are attached, then its end.
      setImmediate(() => {
        if (body.length > 0) incoming.emit("data", body);
        incoming.emit("end");
      });
    });
  }

  updateHttpClientConfig(): void {}

  httpHandlerConfigs(): Record<string, never> {
    return {};
  }

  destroy(): void {}
}

export interface InProcessDynamo {
  /** An SDK client configured as lib/local's `localDynamoClient`, its HTTP hop in process. */
  readonly client: DynamoDBClient;
  close(): Promise<void>;
}

/**
 * dynalite as lib/local's `startDynalite` starts it (tables created at once, every answer's
 * `Date` header on `now`), with a table of the broker's definition named `tableName`, reached by
 * {@link InProcessHandler}. It listens on 127.0.0.1 too, only so that it closes as a server does.
 */
export async function startInProcessDynalite(options: {
  readonly now: () => number;
  readonly tableName: string;
}): Promise<InProcessDynamo> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const { now } = options;
  server.prependListener("request", (_request: IncomingMessage, response: ServerResponse) => {
    response.setHeader("date", new Date(now()).toUTCString());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const client = new DynamoDBClient({
    // The endpoint the SDK signs for; the request never leaves the process.
    endpoint: "http://dynalite.in-process",
    region: LOCAL_AWS_ENV.AWS_REGION,
    credentials: {
      accessKeyId: LOCAL_AWS_ENV.AWS_ACCESS_KEY_ID,
      secretAccessKey: LOCAL_AWS_ENV.AWS_SECRET_ACCESS_KEY,
    },
    disableClockSkewCorrection: true,
    requestHandler: new InProcessHandler(server),
  });
  await client.send(new CreateTableCommand(createTableInput(options.tableName)));
  return {
    client,
    async close() {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
