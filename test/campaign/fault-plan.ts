import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { STS_TIMEOUT_MS } from "../../lib/auth/sts-identity-verifier.js";
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
  /**
   * The other side processes the request and the answer is lost on the way back. Exact's calls
   * (the holder gets `unknown`) and DynamoDB's writes (UpdateItem, PutItem, DeleteItem: the write
   * lands, then the call throws, as a timeout after the request reached DynamoDB would).
   */
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
  /** STS's GetCallerIdentity: token-vend verifying who asks (lib/auth/sts-identity-verifier.ts). */
  Sts: "sts",
  /** The refresh dispatcher's SendMessageBatch to the refresh queue (SQS; campaign-queue.ts). */
  Queue: "queue",
} as const;
export type CallKind = (typeof CallKind)[keyof typeof CallKind];

/** DynamoDB's write commands: a lost answer applies to them (the write lands, the caller gets an error). */
export const DYNAMO_WRITES: readonly string[] = [
  "dynamo:UpdateItemCommand",
  "dynamo:PutItemCommand",
  "dynamo:DeleteItemCommand",
];

/** The refresh dispatcher's send to its queue: SQS may take a batch whose answer never arrives. */
export const QUEUE_SEND = "queue:send";

/**
 * Every fault applies to every call; a lost answer to the calls whose other side processes the
 * request before it answers: Exact's, DynamoDB's writes and the queue's send.
 */
export function faultsFor(callName: string): Fault[] {
  const always: Fault[] = [Fault.Exception, Fault.Hang, Fault.Crash];
  const kind = kindOf(callName);
  const processed =
    kind === CallKind.Exact ||
    kind === CallKind.Login ||
    DYNAMO_WRITES.includes(callName) ||
    callName === QUEUE_SEND;
  return processed ? [...always, Fault.Lost] : always;
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

/** What a fault hit, for the checker: what a DynamoDB write was. */
export interface FaultHit {
  readonly plan: FaultPlan;
  /** A DynamoDB UpdateItem that would have removed the lease (a session's last write). */
  readonly endsLease: boolean;
  /** A DynamoDB UpdateItem that takes a lease (ChainStore.acquire: it sets the lease's owner). */
  readonly takesLease: boolean;
}

/** What a DynamoDB write does to a chain's lease, read from its UpdateExpression. */
export interface LeaseEffect {
  readonly endsLease: boolean;
  readonly takesLease: boolean;
}

const NO_LEASE_EFFECT: LeaseEffect = { endsLease: false, takesLease: false };

/** The campaign's side of a tap: what happens around a fault. */
export interface TapHooks {
  /** Before the fault acts: the case takes note of where the holder stood (its lease, its note). */
  faultHit(tap: Tap, hit: FaultHit): Promise<void>;
  /** A DynamoDB write whose answer is lost has landed (or failed its condition); the holder is about to get an error. */
  landed(tap: Tap, hit: FaultHit): Promise<void>;
  /** A non-HTTP call hangs: move the clock past the holder's lease and run a competing invocation. */
  hang(tap: Tap): Promise<void>;
  /** The call at the planned index is not the one the clean run made there. */
  mismatch(tap: Tap, index: number, name: string): void;
}

/** Picks the call after which a setup's invocation dies: its name and (DynamoDB) its command's input. */
export type StopAfter = (callName: string, input: unknown) => boolean;

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
 * Thrown by a DynamoDB write whose answer the campaign loses: the write was applied (or refused
 * by its condition), and the caller learns nothing of it, as after a socket timeout once the
 * request reached DynamoDB (the SDK's own retry would resend it; the engine's retry does here).
 */
export class InjectedLostAnswer extends Error {
  constructor(callName: string) {
    super(`injected: no answer from DynamoDB after the request reached it (${callName})`);
    this.name = "TimeoutError";
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
  readonly #stopAfter: StopAfter | undefined;
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
    /** A setup's invocation dies right after the first call this matches has returned. */
    readonly stopAfter?: StopAfter;
    readonly hooks: TapHooks;
    readonly sleep: (ms: number) => Promise<void>;
  }) {
    this.owner = options.owner;
    this.#plan = options.plan;
    this.#stopAfter = options.stopAfter;
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
   * @param effect for a DynamoDB write: what it does to the lease (see {@link FaultHit})
   */
  async next(name: string, effect: LeaseEffect = NO_LEASE_EFFECT): Promise<Fault | undefined> {
    await this.#waitForStall();
    if (this.#crashed) return NEVER;
    const fault = this.#count(name, effect);
    if (fault) await this.#hooks.faultHit(this, this.#hit as FaultHit);
    return fault;
  }

  /** For a synchronous call: counts it like `next`; the hook runs as a stall the next call waits for. */
  nextSync(name: string): Fault | undefined {
    if (this.#crashed) return undefined;
    const fault = this.#count(name, NO_LEASE_EFFECT);
    if (fault) {
      const hit = this.#hit as FaultHit;
      this.stallFor(() => this.#hooks.faultHit(this, hit));
    }
    return fault;
  }

  /**
   * Runs a non-HTTP call through the plan: an exception, a hang past the lease, a crash, or (a
   * DynamoDB write) a lost answer: the write is made, then the call throws.
   */
  async around<T>(
    name: string,
    real: () => Promise<T>,
    effect: LeaseEffect = NO_LEASE_EFFECT,
    input?: unknown,
  ): Promise<T> {
    const fault = await this.next(name, effect);
    switch (fault) {
      case undefined: {
        const value = await real();
        return this.#stopAfter?.(name, input) ? this.crash() : value;
      }
      case Fault.Exception:
        throw new InjectedFailure(name);
      case Fault.Hang:
        await this.#hooks.hang(this);
        return real();
      case Fault.Crash:
        return this.crash();
      case Fault.Lost:
        if (!DYNAMO_WRITES.includes(name)) throw new Error(`fault ${fault} does not apply to ${name}`);
        try {
          await real();
        } catch {
          // A refusal (its condition failed) is lost just the same: the caller cannot tell.
        }
        await this.#hooks.landed(this, this.#hit as FaultHit);
        throw new InjectedLostAnswer(name);
      default:
        throw new Error(`fault ${fault} does not apply to ${name}`);
    }
  }

  /** A call that is not HTTP hangs (a queue's send): the clock past the holder's lease, a competitor meanwhile. */
  hang(): Promise<void> {
    return this.#hooks.hang(this);
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

  #count(name: string, effect: LeaseEffect): Fault | undefined {
    this.sequence.push(name);
    const index = this.sequence.length;
    const plan = this.#plan;
    if (!plan || plan.atCall !== index) return undefined;
    if (plan.name !== name) {
      this.#hooks.mismatch(this, index, name);
      return undefined;
    }
    this.#hit = { plan, ...effect };
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
 * @param landed told of each command DynamoDB carried out (a write that landed, its answer lost or not)
 */
export function tappedDynamo(
  real: DynamoDBClient,
  tap: Tap,
  landed?: (callName: string, input: unknown) => void,
): DynamoDBClient {
  const client = Object.create(real) as DynamoDBClient;
  const send = (command: { constructor: { name: string }; input?: unknown }, ...rest: unknown[]) => {
    const name = `dynamo:${command.constructor.name}`;
    return tap.around(
      name,
      async () => {
        const out = await (real.send as (...args: unknown[]) => Promise<unknown>).call(
          real,
          command,
          ...rest,
        );
        landed?.(name, command.input);
        return out;
      },
      leaseEffect(command.input),
      command.input,
    );
  };
  Object.defineProperty(client, "send", { value: send });
  return client;
}

/**
 * What an UpdateItem does to `leaseOwner`: its REMOVE clause names it (a session's lease-ending
 * write), or its SET clause assigns it (ChainStore.acquire).
 */
function leaseEffect(input: unknown): LeaseEffect {
  const update = input as
    | { UpdateExpression?: string; ExpressionAttributeNames?: Record<string, string> }
    | undefined;
  const placeholder = Object.entries(update?.ExpressionAttributeNames ?? {}).find(
    ([, attr]) => attr === "leaseOwner",
  )?.[0];
  const expression = update?.UpdateExpression;
  if (!placeholder || !expression) return NO_LEASE_EFFECT;
  const [setPart = "", removed = ""] = expression.split("REMOVE ");
  return {
    endsLease: removed.split(/,\s*/).includes(placeholder),
    takesLease: setPart.startsWith("SET ") && setPart.includes(`${placeholder} = `),
  };
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
  return {
    clientSecret: (secretId, options) =>
      tap.around("secrets:clientSecret", () => real.clientSecret(secretId, options)),
    loginCredentials: (owner, options) =>
      tap.around("secrets:loginCredentials", () => real.loginCredentials(owner, options)),
  };
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
 * token-vend's fetch to STS (StsIdentityVerifier) through the tap of the invocation `tap()` names
 * (a container's authorizer outlives one invocation): `sts:GetCallerIdentity`. STS only reads, so
 * no answer is lost that a timeout would not lose as well: exception, a refused connection;
 * hang, as Exact's HTTP calls: STS answers too late, the clock moves by the verifier's timeout
 * and the request is aborted; crash, the holder never comes back.
 */
export function tappedStsFetch(tap: () => Tap, advanceMs: (ms: number) => void): typeof fetch {
  return async (input, init) => {
    const current = tap();
    switch (await current.next("sts:GetCallerIdentity")) {
      case Fault.Exception:
        throw new TypeError("fetch failed", {
          cause: new Error("injected: connection refused (sts:GetCallerIdentity)"),
        });
      case Fault.Crash:
        return current.crash();
      case Fault.Hang: {
        await (await fetch(input, init)).arrayBuffer();
        advanceMs(STS_TIMEOUT_MS);
        throw new DOMException(`injected: no answer within ${STS_TIMEOUT_MS} ms`, "TimeoutError");
      }
      default:
        return fetch(input, init);
    }
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
    // A trigger is delivered (or lost) synchronously here: nothing is left in flight to hand off.
    handedOff: async () => undefined,
  };
}
