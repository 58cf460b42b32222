import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { HealTrigger } from "../../lib/chain/engine-deps.js";
import type { TokenCipher } from "../../lib/crypto/token-cipher.js";
import type { BrokerEvent, EventPublisher } from "../../lib/events/broker-events.js";
import type { LinkKeySource } from "../../lib/onboarding/link-key-source.js";
import type { SecretSource } from "../../lib/secrets/secret-source.js";

/** What the campaign does to one call. */
export const Fault = {
  /** The call fails before it reaches the other side (HTTP: a refused connection, `not_sent`). */
  Exception: "exception",
  /**
   * The call stalls past the holder's lease while a competing invocation runs, then goes on. For
   * an HTTP call the client's own timeout ends the wait instead: Exact processes the request, the
   * clock moves by the timeout, and the holder gets `unknown`.
   */
  Hang: "hang",
  /** The holder never comes back: this call and every later one of the invocation never settle. */
  Crash: "crash",
  /** Exact calls only: Exact processes the request and the answer is lost on the way back. */
  Lost: "lost",
} as const;
export type Fault = (typeof Fault)[keyof typeof Fault];

/** The external systems a door talks to; an injected call is named `<kind>:<what>`. */
export const CallKind = {
  Dynamo: "dynamo",
  Cipher: "cipher",
  Secrets: "secrets",
  /** Exact's token endpoint and /api/v1/current/Me. */
  Exact: "exact",
  /** Exact's login pages (the start page, B2C, the OAuth authorization). */
  Login: "login",
  Events: "events",
  HealTrigger: "trigger",
} as const;
export type CallKind = (typeof CallKind)[keyof typeof CallKind];

/** Every fault applies to every call; a lost answer only to Exact's (its other side processes the request). */
export function faultsFor(kind: CallKind): Fault[] {
  const always: Fault[] = [Fault.Exception, Fault.Hang, Fault.Crash];
  return kind === CallKind.Exact || kind === CallKind.Login ? [...always, Fault.Lost] : always;
}

export function kindOf(callName: string): CallKind {
  return callName.slice(0, callName.indexOf(":")) as CallKind;
}

/** One case's fault: `fault` at the door invocation's `atCall`-th call, which the clean run named `name`. */
export interface FaultPlan {
  readonly atCall: number;
  readonly name: string;
  readonly fault: Fault;
}

/** What a fault hit, for the checker: whether it was an HTTP call's, and what a DynamoDB write was. */
export interface FaultHit {
  readonly plan: FaultPlan;
  /** A DynamoDB UpdateItem that would have removed the lease (a session's last write). */
  readonly endsLease: boolean;
}

/** The campaign's side of a tap: what happens around a fault. */
export interface TapHooks {
  /** Before the fault acts: the case takes note of where the holder stood (its lease, its note). */
  faultHit(tap: Tap, hit: FaultHit): Promise<void>;
  /** A non-HTTP call hangs: move the clock past the holder's lease and run a competing invocation. */
  hang(tap: Tap): Promise<void>;
  /** The call at the planned index is not the one the clean run made there. */
  mismatch(tap: Tap, index: number, name: string): void;
}

/** The promise a crashed holder's calls return: it never settles. */
const NEVER: Promise<never> = new Promise<never>(() => undefined);

/** Thrown by a call that the campaign fails with an exception. */
export class InjectedFailure extends Error {
  constructor(callName: string) {
    super(`injected failure: ${callName}`);
    this.name = "InjectedFailure";
  }
}

/**
 * One invocation's view of the outside world. Every external call of the invocation passes
 * `next()` in the order the code makes it, so the sequence of a clean run enumerates the calls
 * and a plan can fail the k-th. A crashed tap swallows every later call and sleep.
 */
export class Tap {
  readonly owner: string;
  readonly sequence: string[] = [];
  readonly #plan: FaultPlan | undefined;
  readonly #hooks: TapHooks;
  readonly #sleep: (ms: number) => Promise<void>;
  #hit: FaultHit | undefined;
  #crashed = false;
  #onCrash: () => void = () => undefined;
  readonly crashedSignal: Promise<void>;
  /** A stall a synchronous call (the heal trigger) started; the holder's next call or sleep waits for it. */
  #stall: Promise<void> | undefined;

  constructor(options: {
    readonly owner: string;
    readonly plan?: FaultPlan;
    readonly hooks: TapHooks;
    readonly sleep: (ms: number) => Promise<void>;
  }) {
    this.owner = options.owner;
    this.#plan = options.plan;
    this.#hooks = options.hooks;
    this.#sleep = options.sleep;
    this.crashedSignal = new Promise<void>((resolve) => {
      this.#onCrash = resolve;
    });
  }

  get crashed(): boolean {
    return this.#crashed;
  }

  /** The fault that hit, once it did. */
  get hit(): FaultHit | undefined {
    return this.#hit;
  }

  /** The invocation's sleep: on the campaign's clock, never returning once the holder crashed. */
  readonly sleep = async (ms: number): Promise<void> => {
    await this.#waitForStall();
    if (this.#crashed) return NEVER;
    await this.#sleep(ms);
  };

  /**
   * Counts the next call and says which fault, if any, to apply to it.
   * @param endsLease for a DynamoDB write: it removes the lease (see {@link FaultHit})
   */
  async next(name: string, endsLease = false): Promise<Fault | undefined> {
    await this.#waitForStall();
    if (this.#crashed) return NEVER;
    const fault = this.#count(name, endsLease);
    if (fault) await this.#hooks.faultHit(this, this.#hit as FaultHit);
    return fault;
  }

  /** For a synchronous call: counts it like `next`; the hook runs as a stall the next call waits for. */
  nextSync(name: string): Fault | undefined {
    if (this.#crashed) return undefined;
    const fault = this.#count(name, false);
    if (fault) {
      const hit = this.#hit as FaultHit;
      this.stallFor(() => this.#hooks.faultHit(this, hit));
    }
    return fault;
  }

  /** Runs a non-HTTP call through the plan: an exception, a hang past the lease, or a crash. */
  async around<T>(name: string, real: () => Promise<T>, endsLease = false): Promise<T> {
    const fault = await this.next(name, endsLease);
    switch (fault) {
      case undefined:
        return real();
      case Fault.Exception:
        throw new InjectedFailure(name);
      case Fault.Hang:
        await this.#hooks.hang(this);
        return real();
      case Fault.Crash:
        return this.crash();
      default:
        throw new Error(`fault ${fault} does not apply to ${name}`);
    }
  }

  /** The holder dies here: this call and everything after it never returns. */
  crash(): Promise<never> {
    this.#crashed = true;
    this.#onCrash();
    return NEVER;
  }

  /** Waits for a stall a synchronous call started (it may crash the tap); never advances the clock. */
  async drain(): Promise<void> {
    await this.#waitForStall();
  }

  /** A synchronous call hangs: the holder stalls at its next call while the hang runs. */
  stallFor(work: () => Promise<void>): void {
    const before = this.#stall ?? Promise.resolve();
    this.#stall = before.then(work);
  }

  /** A synchronous call crashes: the holder's next call or sleep never returns. */
  crashAtNextCall(): void {
    this.stallFor(async () => {
      void this.crash();
    });
  }

  #count(name: string, endsLease: boolean): Fault | undefined {
    this.sequence.push(name);
    const index = this.sequence.length;
    const plan = this.#plan;
    if (!plan || plan.atCall !== index) return undefined;
    if (plan.name !== name) {
      this.#hooks.mismatch(this, index, name);
      return undefined;
    }
    this.#hit = { plan, endsLease };
    return plan.fault;
  }

  async #waitForStall(): Promise<void> {
    while (this.#stall) {
      const stall = this.#stall;
      await stall;
      if (this.#stall === stall) this.#stall = undefined;
    }
  }
}

/**
 * A DynamoDB client whose every command goes through the tap, named by its class
 * (`dynamo:UpdateItemCommand`): the lease, the chain's writes, TOTP claims, guards, nonces, the
 * refresher's query and the hotness marks all pass here.
 */
export function tappedDynamo(real: DynamoDBClient, tap: Tap): DynamoDBClient {
  const client = Object.create(real) as DynamoDBClient;
  const send = (command: { constructor: { name: string }; input?: unknown }, ...rest: unknown[]) =>
    tap.around(
      `dynamo:${command.constructor.name}`,
      () => (real.send as (...args: unknown[]) => Promise<unknown>).call(real, command, ...rest),
      removesLease(command.input),
    );
  Object.defineProperty(client, "send", { value: send });
  return client;
}

/** An UpdateItem whose REMOVE clause names `leaseOwner`: a session's lease-ending write. */
function removesLease(input: unknown): boolean {
  const update = input as
    | { UpdateExpression?: string; ExpressionAttributeNames?: Record<string, string> }
    | undefined;
  const removed = update?.UpdateExpression?.split("REMOVE ")[1];
  if (!removed || !update?.ExpressionAttributeNames) return false;
  const placeholder = Object.entries(update.ExpressionAttributeNames).find(
    ([, attr]) => attr === "leaseOwner",
  )?.[0];
  return placeholder !== undefined && removed.split(/,\s*/).includes(placeholder);
}

/**
 * The token cipher through the tap: `encrypt`, `decrypt` and `prepare` are KMS calls in AWS. The
 * PreparedSealer that `prepare` returns is handed on untouched: its `seal` encrypts with the key
 * material `prepare` already fetched (local computation, no KMS call), so it is not an external
 * call and gets no fault. That is the point of preparing: nothing that can fail stands between
 * Exact's answer and the write that persists it.
 */
export function tappedCipher(real: TokenCipher, tap: Tap): TokenCipher {
  return {
    encrypt: (plaintext, binding) => tap.around("cipher:encrypt", () => real.encrypt(plaintext, binding)),
    decrypt: (ciphertext, binding) => tap.around("cipher:decrypt", () => real.decrypt(ciphertext, binding)),
    prepare: (chain) => tap.around("cipher:prepare", () => real.prepare(chain)),
  };
}

export function tappedSecrets(real: SecretSource, tap: Tap): SecretSource {
  return { get: (secretId, options) => tap.around("secrets:get", () => real.get(secretId, options)) };
}

/** The connect flow's link-signing key: a Secrets Manager read in AWS. */
export function tappedLinkKeys(real: LinkKeySource, tap: Tap): LinkKeySource {
  return { get: () => tap.around("secrets:linkKey", () => real.get()) };
}

export function tappedEvents(tap: Tap, published: BrokerEvent[]): EventPublisher {
  return {
    publish: (event) =>
      tap.around("events:publish", async () => {
        published.push(event);
      }),
  };
}

/**
 * The heal trigger through the tap. In AWS it is an asynchronous Lambda invoke whose failure is
 * logged, never thrown (LambdaHealTrigger), and whose caller does not wait for it, so the faults
 * read: exception, the invoke failed and no heal was triggered; hang, the holder stalls at its
 * next call while the hang runs (clock past the lease, a competitor), and the invoke arrives
 * after it; crash, the invoke is lost with the holder, whose next call never returns.
 * Delivered triggers are only recorded: the recovery runs the heal itself, as fallback-login would.
 */
export function tappedHealTrigger(tap: Tap, delivered: string[], hang: () => Promise<void>): HealTrigger {
  return {
    trigger(connectionId) {
      switch (tap.nextSync("trigger:heal")) {
        case undefined:
          delivered.push(connectionId);
          return;
        case Fault.Exception:
          return;
        case Fault.Hang:
          tap.stallFor(async () => {
            await hang();
            delivered.push(connectionId);
          });
          return;
        case Fault.Crash:
          tap.crashAtNextCall();
          return;
        default:
      }
    },
  };
}
