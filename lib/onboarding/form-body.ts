import type { LambdaFunctionUrlEvent } from "@aws-lambda-powertools/parser/types";
import { ConnectRefused, RefusalReason } from "./connect-refused.js";

const FORM_CONTENT_TYPE = /^application\/x-www-form-urlencoded\s*(;|$)/i;

/**
 * The fields of a form a browser posted to a Function URL. A Function URL passes a body as text
 * only for `text/*` and `application/json`; anything else, a form included, arrives base64
 * (`isBase64Encoded: true`) (AWS Lambda developer guide, "Request payload format": "If the
 * content type of the request is binary, the body is base64-encoded"), so both are read. A
 * repeated field keeps its first value, as URLSearchParams.get does.
 * @returns field name → value, empty without a body
 * @throws ConnectRefused (malformed) when the body is not `application/x-www-form-urlencoded`
 */
export function formFields(
  event: Pick<LambdaFunctionUrlEvent, "body" | "isBase64Encoded" | "headers">,
): Record<string, string> {
  const contentType = event.headers["content-type"] ?? "";
  if (event.body !== undefined && !FORM_CONTENT_TYPE.test(contentType)) {
    throw new ConnectRefused(
      RefusalReason.Malformed,
      "link",
      "the confirmation was not sent as the page's form sends it",
    );
  }
  const text = event.isBase64Encoded
    ? Buffer.from(event.body ?? "", "base64").toString("utf8")
    : (event.body ?? "");
  const fields: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(text)) {
    if (!Object.hasOwn(fields, name)) fields[name] = value;
  }
  return fields;
}
