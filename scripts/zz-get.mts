import { DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { startDynalite } from "../lib/local/dynalite.js";
const d = await startDynalite({});
const t = await d.createTable();
const fast = new DynamoDBClient({
  endpoint: d.endpoint, region: "eu-west-1",
  credentials: { accessKeyId: "x", secretAccessKey: "y" },
  disableClockSkewCorrection: true,
  signer: { sign: async (r: { headers: Record<string, string> }) => { r.headers.authorization = "AWS4-HMAC-SHA256 Credential=local/20260105/eu-west-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"; r.headers["x-amz-date"] = "20260105T090000Z"; return r; } } as never,
  maxAttempts: 1,
});
for (const [name, c] of [["default", d.client], ["nosign", fast], ["default", d.client], ["nosign", fast]] as const) {
  for (let i = 0; i < 50; i++) await c.send(new GetItemCommand({ TableName: t, Key: { pk: { S: "x" } }, ConsistentRead: true }));
  const t0 = performance.now();
  for (let i = 0; i < 1000; i++) await c.send(new GetItemCommand({ TableName: t, Key: { pk: { S: "x" } }, ConsistentRead: true }));
  console.log(name, "ms", (performance.now() - t0) / 1000);
}
await d.close();
