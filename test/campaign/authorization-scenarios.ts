import { Logger, type LogItem } from "@aws-lambda-powertools/logger";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Context } from "aws-lambda";
import { loadAuthorizationSettings } from "../../lib/auth/authorization-settings.js";
import type { CallerIdentity } from "../../lib/auth/caller-identity.js";
import { GrantStore } from "../../lib/auth/grant-store.js";
import { grantPrincipalOf } from "../../lib/auth/principal.js";
import { StsIdentityVerifier } from "../../lib/auth/sts-identity-verifier.js";
import { type CallerDecision, GRANT_CACHE_MS, VendAuthorizer } from "../../lib/auth/vend-authorizer.js";
import type { Broker } from "../../lib/broker.js";
import type { EngineLog } from "../../lib/chain/engine-deps.js";
import type { VendAnswer } from "../../lib/chain/token-cache.js";
import { IdentitySigner } from "../../lib/client/identity-signer.js";
import type { VendEvent } from "../../lib/handlers/events.js";
import { createTokenVendHandler } from "../../lib/handlers/token-vend-handler.js";
import { RedactingLogFormatter } from "../../lib/log/logger.js";
import type { MotoIdentities } from "../auth/moto-identities.js";
import type { AuthorizedVendLog } from "./case-log.js";
import type { CaseRun, Door, Invocation } from "./case-run.js";
import { tappedStsFetch } from "./fault-plan.js";
import { seed } from "./scenarios.js";

/**
 * Vends through token-vend under perConnection (issue 10): the handler as deployed, its
 * authorizer (lib/auth/: STS's GetCallerIdentity, then the grant reads) in front of the vend
 * door. The consumer is a session of role consumer-a in a moto_server that enforces signatures
 * (test/auth/moto-identities.ts); it signs with the client library's IdentitySigner on the
 * campaign's clock (moto checks signatures, not their dates; the broker checks the date itself).
 */

/** The campaign's token-vend: its BROKER_SERVER_ID and region, which the consumer signs for. */
const SERVER_ID = "campaign-broker";
const REGION = "eu-west-1";
const MIN_VALIDITY_SECONDS = 30;
/**
 * Without `getRemainingTimeInMillis`: no invocation deadline, as the campaign's other vends run
 * (a hang moves the fake clock past any deadline; deadlines have their own tests).
 */
const LAMBDA_CONTEXT = { awsRequestId: "campaign", functionName: "token-vend" } as unknown as Context;

/** What the case's consumer holds: its signer, its grant's principal, when its grant was revoked, its warm container. */
interface Consumer {
  readonly signer: IdentitySigner;
  readonly principal: string;
  revokedAtMs?: number;
  warm?: TokenVendContainer;
}

const consumers = new WeakMap<CaseRun, Consumer>();

function consumerOf(run: CaseRun): Consumer {
  const consumer = consumers.get(run);
  if (!consumer) throw new Error(`${run.door.name}: the case has no consumer`);
  return consumer;
}

/** The table's grants, read and written with the unfaulted client, as the CLI does. */
const grantsOf = (run: CaseRun) =>
  new GrantStore({ tableName: run.world.tableName, client: run.world.dynamo });

/**
 * token-vend's edge logger (the error boundary's lines): kept off the output, checked for tokens
 * and secrets like the engine's log.
 */
class CaseLogger extends Logger {
  // A plain field, not #private: Logger's constructor may print before a subclass's fields exist.
  check?: (line: string) => void;

  protected override printLog(_logLevel: number, log: LogItem): void {
    this.check?.(JSON.stringify(log.getAttributes(), this.getJsonReplacer()));
  }
}

function edgeLogger(run: CaseRun, owner: string): Logger {
  const logger = new CaseLogger({ serviceName: "token-vend", logFormatter: new RedactingLogFormatter() });
  logger.check = (line) => {
    if (run.world.leakPattern.test(line)) run.log.leaks.push(`${owner}'s token-vend log line`);
  };
  return logger;
}

/**
 * The real authorizer, watched: how many calls the invocation had made when its authorization
 * started and ended, whether it granted, when (on the campaign's clock), and whether the table
 * held the grant then.
 */
class WatchedAuthorizer extends VendAuthorizer {
  #watching:
    | { readonly vend: AuthorizedVendLog; readonly run: CaseRun; readonly principal: string }
    | undefined;

  watch(vend: AuthorizedVendLog, run: CaseRun, principal: string): void {
    this.#watching = { vend, run, principal };
  }

  override async authorize(
    connectionId: string,
    identity: CallerIdentity | undefined,
    deadlineMs?: number,
  ): Promise<CallerDecision> {
    const watching = this.#watching;
    if (!watching) throw new Error("a campaign container authorizes only the vends it watches");
    const { vend, run, principal } = watching;
    vend.authorizingFrom = vend.tap.sequence.length;
    let decision: CallerDecision;
    try {
      decision = await super.authorize(connectionId, identity, deadlineMs);
    } finally {
      vend.authorizedUntil = vend.tap.sequence.length;
    }
    vend.granted = true;
    vend.decidedAtMs = run.world.clock.now();
    vend.grantStored = await grantsOf(run).isGranted(connectionId, principal);
    return decision;
  }
}

/** How token-vend is built from a broker: the real handler; a rogue's in checker.test.ts. */
export type VendHandlerFactory = (
  broker: Broker,
  logger: Logger,
) => (event: VendEvent, context: Context) => Promise<VendAnswer>;

/** What a door's containers are made of; the defaults are the deployed token-vend's. */
export interface ContainerOptions {
  /** @default the consumers' moto_server */
  readonly stsEndpoint?: string;
  /** The authorizer's clock, made when the container starts. @default the campaign's */
  readonly authorizerClock?: (run: CaseRun) => () => number;
  /** @default createTokenVendHandler */
  readonly handler?: VendHandlerFactory;
}

/**
 * One token-vend container: its authorizer, with what a warm container keeps (verified identities
 * until their signature's 15 minutes end, grants found for a minute), lives across the
 * invocations it serves, one at a time as Lambda's are; every call it makes goes through the tap
 * of the invocation it serves.
 */
class TokenVendContainer {
  readonly #run: CaseRun;
  readonly #authorizer: WatchedAuthorizer;
  readonly #handler: VendHandlerFactory;
  #serving: Invocation | undefined;

  constructor(run: CaseRun, options: ContainerOptions & { readonly stsEndpoint: string }) {
    this.#run = run;
    this.#handler = options.handler ?? createTokenVendHandler;
    const authorizerNow = options.authorizerClock?.(run) ?? run.world.clock.now;
    const { world } = run;
    const serving = (): Invocation => {
      if (!this.#serving) throw new Error("the container serves no invocation");
      return this.#serving;
    };
    const dynamo = Object.create(world.dynamo) as DynamoDBClient;
    Object.defineProperty(dynamo, "send", {
      value: (...args: unknown[]) =>
        (serving().dynamo.send as (...a: unknown[]) => Promise<unknown>).apply(serving().dynamo, args),
    });
    const log: EngineLog = {
      info: (message, ...extra) => serving().broker.deps.log.info(message, ...extra),
      warn: (message, ...extra) => serving().broker.deps.log.warn(message, ...extra),
      error: (message, ...extra) => serving().broker.deps.log.error(message, ...extra),
    };
    this.#authorizer = new WatchedAuthorizer({
      settings: loadAuthorizationSettings({
        VEND_AUTHORIZATION: "perConnection",
        BROKER_SERVER_ID: SERVER_ID,
        AWS_REGION: REGION,
      }),
      grants: new GrantStore({ tableName: world.tableName, client: dynamo }),
      verifier: new StsIdentityVerifier({
        serverId: SERVER_ID,
        region: REGION,
        endpoint: options.stsEndpoint,
        fetch: tappedStsFetch(
          () => serving().tap,
          (ms) => world.clock.advanceMs(ms),
        ),
        now: authorizerNow,
      }),
      log,
      now: authorizerNow,
    });
  }

  /** The consumer's vend of the case's connection, as it invokes token-vend, in `invocation`. */
  async serve(invocation: Invocation): Promise<VendAnswer> {
    const run = this.#run;
    const { connectionId } = run.connection;
    const consumer = consumerOf(run);
    const vend: AuthorizedVendLog = {
      tap: invocation.tap,
      callerGranted: await grantsOf(run).isGranted(connectionId, consumer.principal),
      revokedAtMs: consumer.revokedAtMs,
      granted: false,
    };
    run.log.authorizedVends.push(vend);
    const callerIdentity = await consumer.signer.identity();
    this.#serving = invocation;
    this.#authorizer.watch(vend, run, consumer.principal);
    const handler = this.#handler(
      { ...invocation.broker, authorizer: this.#authorizer },
      edgeLogger(run, invocation.tap.owner),
    );
    try {
      const answer = await handler(
        { connectionId, minValiditySeconds: MIN_VALIDITY_SECONDS, callerIdentity },
        LAMBDA_CONTEXT,
      );
      vend.answer = "token";
      run.log.vendAnswered(invocation.tap.owner, MIN_VALIDITY_SECONDS, answer);
      return answer;
    } catch (error) {
      vend.answer = error instanceof Error ? error.name : String(error);
      throw error;
    }
  }
}

/** What the doors below share: the consumer's moto_server and how their containers are built. */
class Doors {
  readonly #ids: MotoIdentities;
  readonly #options: ContainerOptions & { readonly stsEndpoint: string };

  constructor(ids: MotoIdentities, options: ContainerOptions) {
    this.#ids = ids;
    this.#options = { ...options, stsEndpoint: options.stsEndpoint ?? ids.moto.endpoint };
  }

  container(run: CaseRun): TokenVendContainer {
    return new TokenVendContainer(run, this.#options);
  }

  /** A vend in a container of its own (a cold start). */
  readonly cold = (run: CaseRun, invocation: Invocation) => this.container(run).serve(invocation);

  /** The competitor a hang lets in: a vend in another container (the door's serves one invocation at a time). */
  readonly coldVend = (run: CaseRun) => run.invoke("competitor", (invocation) => this.cold(run, invocation));

  /** The connection seeded, and its consumer (consumer-a's session) granted it or not. */
  async seededFor(run: CaseRun, granted: boolean): Promise<void> {
    await seed(run);
    const role = this.#ids.roleA;
    const principal = grantPrincipalOf(role.arn);
    const signer = new IdentitySigner({
      serverId: SERVER_ID,
      region: REGION,
      // The host it signs for is the one token-vend verifies at, as a consumer configured for it does.
      stsEndpoint: this.#options.stsEndpoint,
      credentials: async () => role.credentials,
      now: run.world.clock.now,
    });
    consumers.set(run, { signer, principal });
    if (granted) await grantsOf(run).grant(run.connection.connectionId, principal);
  }
}

/** A1. A granted consumer's vend in a new container: STS, the grant reads, then the vend served from the stored token. */
export function grantedCallerDoor(ids: MotoIdentities, options: ContainerOptions = {}): Door {
  const doors = new Doors(ids, options);
  return {
    name: "token-vend (granted caller)",
    mode: "code",
    setup: (run) => doors.seededFor(run, true),
    act: doors.cold,
    compete: doors.coldVend,
  };
}

/**
 * A2. A warm container past its cached grant's minute: it served the consumer once (identity and
 * grant cached), the operator revoked the grant, a minute passed. The identity is still cached
 * (its signature has 15), so the grant reads are the only calls, and they refuse.
 */
export function revokedGrantDoor(ids: MotoIdentities, options: ContainerOptions = {}): Door {
  const doors = new Doors(ids, options);
  return {
    name: "token-vend (grant revoked, warm container)",
    mode: "code",
    async setup(run) {
      await doors.seededFor(run, true);
      const consumer = consumerOf(run);
      const warm = doors.container(run);
      const served = await run.invoke("setup", (invocation) => warm.serve(invocation));
      if (served.kind !== "returned")
        throw new Error(`${run.door.name} setup: the first vend was not served`);
      await grantsOf(run).revoke(run.connection.connectionId, consumer.principal);
      consumer.revokedAtMs = run.world.clock.now();
      consumer.warm = warm;
      run.world.clock.advanceMs(GRANT_CACHE_MS + 1_000);
    },
    act: (run, invocation) => {
      const warm = consumerOf(run).warm;
      if (!warm) throw new Error(`${run.door.name}: no warm container`);
      return warm.serve(invocation);
    },
    compete: doors.coldVend,
  };
}

/** A3. A consumer never granted the connection, in a new container: STS, the grant reads, AccessDenied. */
export function ungrantedCallerDoor(ids: MotoIdentities, options: ContainerOptions = {}): Door {
  const doors = new Doors(ids, options);
  return {
    name: "token-vend (caller without a grant)",
    mode: "code",
    setup: (run) => doors.seededFor(run, false),
    act: doors.cold,
    compete: doors.coldVend,
  };
}
