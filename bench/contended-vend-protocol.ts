/** What bench/contended-vend.ts and its child processes say to each other. */

/** A child writes this line to stderr once its brokers are built. */
export const READY_MARKER = "@@contended-vend-ready";

/** A child's stdout line after each round. */
export interface RoundResult {
  readonly latenciesMs: number[];
  /** Wall time of each refresh call to Exact's token endpoint made in the process this round. */
  readonly tokenCallsMs: number[];
  readonly generations: number[];
  /** DynamoDB requests the process's callers made this round. */
  readonly dynamoRequests: number;
  /** errorType of each vend that failed. */
  readonly errors: string[];
}
