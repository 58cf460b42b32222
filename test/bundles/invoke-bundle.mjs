/**
 * Loads one built Lambda bundle in this (fresh) Node process, the way the Lambda runtime does
 * (`import()` of index.mjs, then `handler(event, context)`), and prints one result line:
 *
 *   @@result {"ok":true,"value":…} | {"ok":false,"errorType":"…","errorMessage":"…"}
 *
 * Argv: <bundle file> <event JSON> [timeout ms]. Environment: what the function would get.
 * Everything else on stdout is the bundle's own output (Powertools log and metric lines).
 * Tokens never leave this process: any `accessToken`/`refreshToken` in the answer is replaced by
 * its SHA-256 (`accessTokenSha256`), so a test can compare tokens without seeing them.
 */
import { createHash, randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";

const RESULT_MARKER = "@@result ";
const TOKEN_KEYS = new Set(["accessToken", "refreshToken", "access_token", "refresh_token"]);

const [bundle, eventJson = "{}", timeoutMs = "30000"] = process.argv.slice(2);
if (!bundle) throw new Error("usage: invoke-bundle.mjs <bundle.mjs> <event JSON> [timeout ms]");

function scrub(value) {
  if (Array.isArray(value)) return value.map(scrub);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) =>
      TOKEN_KEYS.has(key) && typeof inner === "string"
        ? [`${key}Sha256`, createHash("sha256").update(inner).digest("hex")]
        : [key, scrub(inner)],
    ),
  );
}

const functionName = process.env.POWERTOOLS_SERVICE_NAME ?? "bundle";
const deadlineMs = Date.now() + Number(timeoutMs);
const context = {
  callbackWaitsForEmptyEventLoop: true,
  functionName,
  functionVersion: "$LATEST",
  invokedFunctionArn: `arn:aws:lambda:eu-west-1:000000000000:function:${functionName}`,
  memoryLimitInMB: "512",
  awsRequestId: randomUUID(),
  logGroupName: `/aws/lambda/${functionName}`,
  logStreamName: "local",
  getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
};

let result;
try {
  const { handler } = await import(pathToFileURL(bundle).href);
  result = { ok: true, value: scrub(await handler(JSON.parse(eventJson), context)) };
} catch (error) {
  // What Lambda hands a caller: the error's name and message (the handlers keep secrets out of both).
  result = { ok: false, errorType: error?.name ?? "Error", errorMessage: String(error?.message ?? error) };
}
// Exit once the line is out: the SDK's keep-alive sockets would hold the process open.
process.stdout.write(`${RESULT_MARKER}${JSON.stringify(result)}\n`, () => process.exit(0));
