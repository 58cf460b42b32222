import { defaultProvider } from "@aws-sdk/credential-provider-node";
import type { AwsCredentialsProvider } from "../client/identity-signer.js";
import type { EngineLog, HealTrigger } from "./engine-deps.js";
import type { HealDoor } from "./heal-door.js";
import { invokeLambdaEvent } from "./lambda-event-invoke.js";

export interface LambdaHealTriggerOptions {
  /** fallback-login's name or ARN (FALLBACK_LOGIN_FUNCTION_NAME). */
  readonly functionName: string;
  readonly log: EngineLog;
  /** @default AWS_REGION (Lambda sets it), else AWS_DEFAULT_REGION */
  readonly region?: string;
  /**
   * @default the AWS SDK's default provider chain, built at the first trigger (in Lambda: the
   * function role's credentials from the environment), the chain every SDK client here uses
   */
  readonly credentials?: AwsCredentialsProvider;
  /** Where Lambda is: only tests change it (moto_server). @default https://lambda.<region>.amazonaws.com */
  readonly endpoint?: string;
  /** @default 3000 */
  readonly httpTimeoutMs?: number;
  /** @default 3, as the SDK's standard retry */
  readonly maxAttempts?: number;
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch;
}

/** Lambda queues an event in tens of milliseconds; an invoke still unanswered after 3 s is retried. */
const DEFAULT_HTTP_TIMEOUT_MS = 3_000;
const DEFAULT_MAX_ATTEMPTS = 3;

/**
 * In AWS: invoke fallback-login asynchronously (InvocationType Event), so the vend that found
 * the chain broken does not hold its caller through a login. Duplicate invocations are
 * harmless: the heal door takes the chain's lease.
 *
 * The invoke is one SigV4-signed HTTP call (lambda-event-invoke.ts), not the Lambda client: 73 KB
 * less in token-vend and refresh-worker (issue 12). Heals are rare, so the credentials are
 * resolved at the first trigger, not when the function starts. A failed invoke is logged, never
 * thrown: the vend that triggered it answers as it would have anyway.
 */
export class LambdaHealTrigger implements HealTrigger {
  readonly #options: LambdaHealTriggerOptions;
  #credentials: AwsCredentialsProvider | undefined;
  /** Invokes not yet answered, each settling (never rejecting) when Lambda answers or the invoke fails. */
  readonly #inFlight = new Set<Promise<void>>();

  constructor(options: LambdaHealTriggerOptions) {
    this.#options = options;
    this.#credentials = options.credentials;
  }

  trigger(connectionId: string): void {
    const invoke = this.#invoke(connectionId)
      .catch((error: unknown) =>
        this.#options.log.error("could not invoke fallback-login", { connectionId, error: error as Error }),
      )
      .finally(() => this.#inFlight.delete(invoke));
    this.#inFlight.add(invoke);
  }

  async handedOff(timeoutMs?: number): Promise<void> {
    if (this.#inFlight.size === 0) return;
    const all = Promise.all([...this.#inFlight]).then(() => undefined);
    if (timeoutMs === undefined) return all;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, timeoutMs));
    });
    try {
      await Promise.race([all, late]);
    } finally {
      clearTimeout(timer);
    }
    if (this.#inFlight.size > 0) {
      this.#options.log.warn("fallback-login invokes still unanswered at the deadline", {
        invokes: this.#inFlight.size,
      });
    }
  }

  async #invoke(connectionId: string): Promise<void> {
    const { functionName, endpoint, fetch } = this.#options;
    const region = this.#options.region ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION);
    if (!region) throw new Error("no region to invoke fallback-login in: AWS_REGION is not set");
    this.#credentials ??= defaultProvider();
    await invokeLambdaEvent({
      functionName,
      payload: { connectionId },
      region,
      credentials: this.#credentials,
      httpTimeoutMs: this.#options.httpTimeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS,
      maxAttempts: this.#options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      ...(endpoint !== undefined ? { endpoint } : {}),
      ...(fetch !== undefined ? { fetch } : {}),
    });
  }
}

/** Locally (no FALLBACK_LOGIN_FUNCTION_NAME): the heal runs in this process, in the background. */
export class InProcessHealTrigger implements HealTrigger {
  readonly #running = new Map<string, Promise<unknown>>();
  readonly #door: () => HealDoor;
  readonly #log: EngineLog;

  /** `door` is a thunk: the heal door is built from the same deps as the doors that trigger it. */
  constructor(door: () => HealDoor, log: EngineLog) {
    this.#door = door;
    this.#log = log;
  }

  trigger(connectionId: string): void {
    if (this.#running.has(connectionId)) return;
    const run = this.#door()
      .heal(connectionId)
      .catch((error: unknown) =>
        this.#log.error("background heal failed", { connectionId, error: error as Error }),
      )
      .finally(() => this.#running.delete(connectionId));
    this.#running.set(connectionId, run);
  }

  /** The heal runs in this process: there is nothing to hand off. */
  async handedOff(): Promise<void> {}

  /** Resolves when every heal this trigger started has finished (tests, `npm start`). */
  async settled(): Promise<void> {
    await Promise.all([...this.#running.values()]);
  }
}
