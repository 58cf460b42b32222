/**
 * Measures how far this process's clock is from DynamoDB's, and refuses lease work when it may
 * be further off than the lease protocol tolerates (CLOCK_SKEW_BOUND_MS, lib/chain/timing.ts).
 *
 * Why DynamoDB's clock is the reference: a lease's `leaseUntilMs` is written by one process on
 * its clock and judged expired by another on its own; the only thing every process shares is the
 * table. If each process is within the bound of one common clock, any two are within twice the
 * bound of each other, which the lease margins absorb (timing.ts). DynamoDB's clock is that
 * common clock: every process already talks to it, so each response's `Date` header measures our
 * clock for free, with no NTP server of our own to trust.
 *
 * Why the AWS SDK's own correction does not do this (read in @aws-sdk/core 3.981.1,
 * `dist-es/submodules/httpAuthSchemes/utils/getUpdatedSystemClockOffset.js` and
 * `.../aws_sdk/AwsSdkSigV4Signer.js`): the client keeps one `systemClockOffset`, updated from
 * every response as the point estimate `Date header − Date.now()`, ignoring the header's
 * one-second resolution and the round trip. It only moves the SigV4 signing date, never the
 * times we write, and it reads `Date.now()`, not the injected clock. It acts on skew (marks an
 * error `clockSkewCorrected` so the retry strategy resends the request) only when the offset
 * is at least 240 000 ms (`AwsSdkSigV4Signer.errorHandler`; `utils/isClockSkewed.js` uses the same
 * 4 minutes): a scale that keeps signatures valid, eighty times our bound.
 *
 * Resolution: RFC 7231 §7.1.1.1 dates have whole seconds (IMF-fixdate), and servers write the
 * second they are in, so the server's clock was somewhere in `[date, date + 1000)` ms while it
 * produced the response, which it did between our send and our receipt. One measurement thus
 * bounds the offset (DynamoDB − local) to `[date − receivedAtMs, date + 1000 − sentAtMs]`: an
 * interval at least 1 s wide, plus the round trip.
 *
 * Why the bound must be at least 2 s: a perfectly synchronised clock can still measure an
 * endpoint up to 1 s + round trip away from zero (the interval above is that wide and contains
 * zero). With a bound under 1 s plus the round trip, a correct clock would be refused; 2 s
 * leaves a second for the round trip, and 3 s also room for a slow request and NTP jitter.
 */
import type { DeserializeMiddleware, MiddlewareStack } from "@smithy/types";
import { ClockSkewed } from "../errors.js";
import { CLOCK_SKEW_BOUND_MS } from "./timing.js";

/**
 * The part of an AWS SDK v3 command `attach` uses: its own middleware stack. `any` because a
 * command's stack is invariant in its input and output types and the middleware touches neither.
 */
// biome-ignore lint/suspicious/noExplicitAny: see above; any DynamoDB command must fit
export type MeasurableCommand = { readonly middlewareStack: MiddlewareStack<any, any> };

/** Bounds on DynamoDB's clock minus this process's, in ms; positive means ours is behind. */
export interface OffsetRange {
  readonly lowMs: number;
  readonly highMs: number;
}

// RFC 7231 §7.1.1.1 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT". Senders must use it; a
// date in another shape may carry another resolution, so it is not a measurement.
const IMF_FIXDATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

const MIDDLEWARE_NAME = "clockSkewMonitor";

/** The `date` header of a raw response, if it is a string; the SDK types the response `unknown`. */
function dateHeaderOf(response: unknown): string | undefined {
  if (typeof response !== "object" || response === null || !("headers" in response)) return undefined;
  const { headers } = response;
  if (typeof headers !== "object" || headers === null || !("date" in headers)) return undefined;
  // Node lowercases header names, and the SDK's node-http-handler keeps them as Node gives them.
  return typeof headers.date === "string" ? headers.date : undefined;
}

/** "2.9 s" for 2_890 ms or −2_910 ms: what a message shows, to 0.1 s. */
function seconds(ms: number): string {
  return `${(Math.abs(ms) / 1000).toFixed(1)} s`;
}

/** "2.9 s ahead" / "0.4 s behind": where our clock stands, for an offset (DynamoDB − local) in ms. */
function describeOffset(offsetMs: number): string {
  return `${seconds(offsetMs)} ${offsetMs <= 0 ? "ahead" : "behind"}`;
}

/** A measurement wider than this (ms: the header's second plus a 1.5 s round trip) is not used. */
const MAX_MEASUREMENT_WIDTH_MS = 2_500;

/** How long measurements are intersected before the next one starts afresh (ms). */
const INTERSECT_FOR_MS = 10 * 60_000;

/**
 * What this process's recent responses tell of its clock against DynamoDB's, taken from the `Date`
 * header of the responses to the commands it is attached to. One per clock: several monitors may
 * share one DynamoDBClient, each attached to its own commands.
 */
export class ClockSkewMonitor {
  readonly #now: () => number;
  readonly #boundMs: number;
  #range: OffsetRange | undefined;
  /** When the measurements now intersected began (this clock, ms). */
  #sinceMs = 0;

  /**
   * @param options.now this process's clock, ms since the epoch: the one its lease writes use.
   * @param options.boundMs the largest offset tolerated, ms. @default CLOCK_SKEW_BOUND_MS
   */
  constructor(options: { readonly now: () => number; readonly boundMs?: number }) {
    this.#now = options.now;
    this.#boundMs = options.boundMs ?? CLOCK_SKEW_BOUND_MS;
  }

  /**
   * One measurement: our clock's readings (ms) when the request was sent and when the response
   * arrived, and the response's `Date` header. A missing header, or one that is not a valid
   * IMF-fixdate, is ignored (the previous measurement stands). Readings that run backwards mean
   * our clock was stepped back during the request: neither this measurement nor any earlier one
   * describes the clock now, so both are dropped and the next response measures afresh.
   *
   * Measurements are intersected: the offset lies in every interval, so a slow round trip (a wide
   * interval) cannot make a well-measured clock look doubtful and refuse leases for nothing. The
   * intersection is started afresh when a new interval does not overlap it (NTP stepped the clock)
   * and after INTERSECT_FOR_MS (drift: a few ppm, well under a millisecond in that time).
   */
  record(sentAtMs: number, receivedAtMs: number, dateHeader: string | undefined): void {
    if (dateHeader === undefined || !IMF_FIXDATE.test(dateHeader)) return;
    const dateMs = Date.parse(dateHeader);
    if (Number.isNaN(dateMs)) return;
    if (receivedAtMs < sentAtMs) {
      this.#range = undefined;
      return;
    }
    const next = { lowMs: dateMs - receivedAtMs, highMs: dateMs + 1000 - sentAtMs };
    // A slow round trip (a loaded machine, a retried request) says too little to judge by; the
    // next response measures again.
    if (next.highMs - next.lowMs > MAX_MEASUREMENT_WIDTH_MS) return;
    const current = this.#range;
    const overlaps = current !== undefined && next.lowMs <= current.highMs && current.lowMs <= next.highMs;
    if (overlaps && receivedAtMs - this.#sinceMs <= INTERSECT_FOR_MS) {
      this.#range = {
        lowMs: Math.max(current.lowMs, next.lowMs),
        highMs: Math.min(current.highMs, next.highMs),
      };
      return;
    }
    this.#range = next;
    this.#sinceMs = receivedAtMs;
  }

  /** Bounds on DynamoDB's clock minus ours (ms) from the latest measurement; undefined before one. */
  offsetRangeMs(): OffsetRange | undefined {
    return this.#range;
  }

  /** Whether a measurement is at hand; callers make a request first when it is not. */
  get measured(): boolean {
    return this.#range !== undefined;
  }

  /**
   * Does nothing when the measured offset is certainly within `±boundMs`, or when nothing has
   * been measured (callers measure first).
   * @throws ClockSkewed when the offset MAY exceed the bound (either end of the measured
   *   interval lies outside it): the lease protocol's guarantee holds only for clocks within it.
   */
  assertWithinBound(): void {
    const range = this.#range;
    if (!range || (range.lowMs >= -this.#boundMs && range.highMs <= this.#boundMs)) return;
    const midMs = (range.lowMs + range.highMs) / 2;
    const worstMs = Math.abs(range.lowMs) >= Math.abs(range.highMs) ? range.lowMs : range.highMs;
    throw new ClockSkewed(
      `This machine's clock differs from DynamoDB's: it is about ${describeOffset(midMs)}, and may be as ` +
        `much as ${describeOffset(worstMs)} (DynamoDB's Date header has one-second resolution), more than ` +
        `the ${seconds(this.#boundMs)} either way the lease protocol tolerates. ` +
        "Fix this machine's clock (NTP: chronyd, systemd-timesyncd) and try again; no lease is taken until then.",
    );
  }

  /**
   * Makes `command` measure this monitor's clock: a middleware on the command's own stack (never
   * the client's, which other monitors share) reads `now()` just before the request goes out and
   * as soon as the response's headers arrive, and records the response's `Date` header. The
   * command's result, or its error, passes through untouched; a request that gets no response
   * measures nothing.
   *
   * Step `deserialize`, priority `low`: the innermost place in the stack, below the SDK's
   * deserializer, so it sees the raw HttpResponse of every status (a lost conditional write
   * answers 400 and is still a measurement), once per attempt (it runs inside the retry
   * middleware, so each attempt's send and receipt are paired), after signing.
   * @returns `command`, to send.
   * @throws Error (from the SDK) if the command already has a monitor attached.
   */
  attach<C extends MeasurableCommand>(command: C): C {
    const measure: DeserializeMiddleware<object, object> = (next) => async (args) => {
      const sentAtMs = this.#now();
      const result = await next(args);
      this.record(sentAtMs, this.#now(), dateHeaderOf(result.response));
      return result;
    };
    command.middlewareStack.add(measure, { step: "deserialize", priority: "low", name: MIDDLEWARE_NAME });
    return command;
  }
}
