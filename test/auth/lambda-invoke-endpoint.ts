import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { LambdaClient } from "@aws-sdk/client-lambda";

/** A local endpoint that speaks Lambda's Invoke API for one handler, and how often it ran. */
export interface InvokeEndpoint {
  /** A real LambdaClient pointed at this endpoint. */
  readonly lambda: LambdaClient;
  readonly invocations: () => number;
  close(): Promise<void>;
}

/**
 * Serves `POST /2015-03-31/functions/NAME/invocations` on 127.0.0.1 as the Lambda service
 * answers a RequestResponse invoke: 200 with the handler's answer, or 200 with
 * `X-Amz-Function-Error` and `{errorType, errorMessage}` when it threw. So the consumer's real
 * LambdaClient and client library reach the real handler over HTTP.
 */
export async function startInvokeEndpoint<E, C>(
  handler: (event: E, context: C) => Promise<unknown>,
): Promise<InvokeEndpoint> {
  let invocations = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      invocations += 1;
      const event: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      const context = {
        awsRequestId: `req-${invocations}`,
        functionName: "token-vend",
        getRemainingTimeInMillis: () => 20_000,
      };
      // The runtime hands the handler whatever JSON arrived; the handler's schema checks it.
      handler(event as E, context as C).then(
        (answer) => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify(answer));
        },
        (error: Error) => {
          res.writeHead(200, { "content-type": "application/json", "x-amz-function-error": "Unhandled" });
          res.end(JSON.stringify({ errorType: error.name, errorMessage: error.message }));
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const lambda = new LambdaClient({
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    region: "eu-west-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  return {
    lambda,
    invocations: () => invocations,
    async close() {
      lambda.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
