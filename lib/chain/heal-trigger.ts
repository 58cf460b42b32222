import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import type { EngineLog, HealTrigger } from "./engine-deps.js";
import type { HealDoor } from "./heal-door.js";

/**
 * In AWS: invoke fallback-login asynchronously (InvocationType Event), so the vend that found
 * the chain broken does not hold its caller through a login. Duplicate invocations are
 * harmless: the heal door takes the chain's lease.
 *
 * Heals are rare, so the Lambda client is built at the first trigger, not when the function
 * starts: a cold start does not pay for resolving its configuration (issue 12).
 */
export class LambdaHealTrigger implements HealTrigger {
  readonly #functionName: string;
  #client: LambdaClient | undefined;
  readonly #log: EngineLog;

  constructor(options: {
    readonly functionName: string;
    readonly log: EngineLog;
    readonly client?: LambdaClient;
  }) {
    this.#functionName = options.functionName;
    this.#log = options.log;
    this.#client = options.client;
  }

  trigger(connectionId: string): void {
    this.#invoke(connectionId).catch((error: unknown) =>
      this.#log.error("could not invoke fallback-login", { connectionId, error: error as Error }),
    );
  }

  async #invoke(connectionId: string): Promise<void> {
    this.#client ??= new LambdaClient({});
    await this.#client.send(
      new InvokeCommand({
        FunctionName: this.#functionName,
        InvocationType: "Event",
        Payload: new TextEncoder().encode(JSON.stringify({ connectionId })),
      }),
    );
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

  /** Resolves when every heal this trigger started has finished (tests, `npm start`). */
  async settled(): Promise<void> {
    await Promise.all([...this.#running.values()]);
  }
}
