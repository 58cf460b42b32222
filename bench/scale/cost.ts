import type { CallCounts } from "./instruments.js";
import type { PhaseRates } from "./report.js";

/**
 * On-demand prices, us-east-1 (the README's cost section states the same): what the scale bench
 * prices its counts with.
 */
export const PRICES = {
  /** DynamoDB on-demand, per write / read request unit (items under 1 KB / 4 KB). */
  dynamoWrite: 0.625 / 1e6,
  dynamoRead: 0.125 / 1e6,
  /** KMS, per request. */
  kms: 0.03 / 1e4,
  /** Secrets Manager, per API call. */
  secretRead: 0.05 / 1e4,
  /** Lambda arm64, per GB-second and per request. */
  lambdaGbs: 0.0000133334,
  lambdaRequest: 0.2 / 1e6,
  /** SQS standard, per request (a SendMessageBatch of up to 10 is one). */
  sqsRequest: 0.4 / 1e6,
} as const;

/** Dollars for one side's counts, by the request units DynamoDB bills; the key store's reads are eventually consistent (half a unit). */
function dollars(counts: CallCounts): { dynamo: number; kms: number; secrets: number; sqs: number } {
  return {
    dynamo:
      counts.writeUnits * PRICES.dynamoWrite +
      (counts.readUnits + counts.keyStoreReads / 2) * PRICES.dynamoRead,
    kms: counts.kmsRequests * PRICES.kms,
    secrets: counts.secretFetches * PRICES.secretRead,
    // SendMessageBatch by the dispatcher; ReceiveMessage and DeleteMessageBatch per batch the
    // event source hands the worker. Pollers' empty long polls are a fixed cost (README).
    sqs: (counts.sqsSends + 2 * counts.sqsReceives) * PRICES.sqsRequest,
  };
}

/** One row per service: dollars per hot connection-month, refresh side and token-vend apart. */
export function costRows(hot: PhaseRates): string[][] {
  const months = hot.connectionMonths;
  const refresh = dollars(hot.refreshSide);
  const vend = dollars(hot.vendSide);
  const lambda = (fns: readonly (keyof PhaseRates["lambdaGbs"])[]) =>
    fns.reduce(
      (sum, fn) => sum + hot.lambdaGbs[fn] * PRICES.lambdaGbs + hot.invocations[fn] * PRICES.lambdaRequest,
      0,
    );
  const rows: Array<[string, number, number]> = [
    ["DynamoDB (chain table, key store)", refresh.dynamo, vend.dynamo],
    ["KMS requests", refresh.kms, vend.kms],
    ["Secrets Manager calls", refresh.secrets, vend.secrets],
    ["SQS requests", refresh.sqs, vend.sqs],
    ["Lambda (GB-s and requests)", lambda(["refresh", "refresh-worker"]), lambda(["token-vend"])],
  ];
  const money = (n: number) => `$${(n / months).toFixed(4)}`;
  const total = rows.reduce((sum, [, a, b]) => sum + a + b, 0);
  return [
    ...rows.map(([name, a, b]) => [name, money(a), money(b), money(a + b)]),
    ["per-request total", "", "", money(total)],
  ];
}
