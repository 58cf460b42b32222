import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { EngineLog } from "../chain/engine-deps.js";
import { AccessDenied, BrokerError, ConfigurationError } from "../errors.js";
import {
  type AuthorizationSettings,
  loadAuthorizationSettings,
  VendAuthorization,
} from "./authorization-settings.js";
import type { CallerIdentity } from "./caller-identity.js";
import { GrantStore } from "./grant-store.js";
import { StsIdentityVerifier, type VerifiedCaller } from "./sts-identity-verifier.js";

/** What token-vend learnt about a vend's caller before serving it. */
export interface CallerDecision {
  /** The ARN STS verified, when the caller sent an identity that passed (the audit history's `caller`). */
  readonly caller?: string;
  /**
   * `granted`: a verified caller with a grant. `wouldDeny` (stackWide only): perConnection would
   * have refused it (no identity, one that fails, no grant). `unchecked` (stackWide only): it could
   * not be checked (STS failed, or no BROKER_SERVER_ID).
   */
  readonly outcome: "granted" | "unchecked" | "wouldDeny";
}

export interface VendAuthorizerOptions {
  readonly settings: AuthorizationSettings;
  readonly grants: GrantStore;
  /** Absent when BROKER_SERVER_ID or AWS_REGION is not set: perConnection then refuses to start. */
  readonly verifier?: StsIdentityVerifier;
  readonly log: EngineLog;
  /** Epoch ms. @default Date.now */
  readonly now?: () => number;
}

/**
 * A grant found is remembered this long per container, so a warm vend makes no DynamoDB call
 * for it (as the warm token cache, which also answers from memory for up to a minute). A revoke
 * therefore reaches warm containers within a minute; refusals are never remembered.
 */
export const GRANT_CACHE_MS = 60_000;
const MAX_CACHED_GRANTS = 1_000;

/**
 * Decides whether token-vend may serve a connection to the caller, before any chain work
 * (no token read, no refresh): verifies the caller's signed identity with STS (cached until the
 * signature's 15 minutes end) and looks up its grant (cached a minute).
 */
export class VendAuthorizer {
  readonly #settings: AuthorizationSettings;
  readonly #grants: GrantStore;
  readonly #verifier: StsIdentityVerifier | undefined;
  readonly #log: EngineLog;
  readonly #now: () => number;
  /** `connectionId \n principal` → until when the grant is taken as found. */
  readonly #granted = new Map<string, number>();

  constructor(options: VendAuthorizerOptions) {
    this.#settings = options.settings;
    this.#grants = options.grants;
    this.#verifier = options.verifier;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Called when token-vend starts, so a function that cannot authorize fails its init, not its vends.
   * @throws ConfigurationError under perConnection without BROKER_SERVER_ID or AWS_REGION
   */
  assertReady(): void {
    if (this.#settings.mode === VendAuthorization.PerConnection && !this.#verifier) {
      throw new ConfigurationError(
        "VEND_AUTHORIZATION=perConnection needs BROKER_SERVER_ID (the stack sets it) and AWS_REGION, " +
          "or set VEND_AUTHORIZATION=stackWide",
      );
    }
  }

  /**
   * @param identity the event's `callerIdentity`, as the schema admitted it
   * @param deadlineMs epoch ms by which the STS call must be over
   * @throws AccessDenied (perConnection): no identity, an identity that fails a check or STS
   *   refuses, or a caller without a grant for the connection; StsUnavailable when STS fails
   */
  async authorize(
    connectionId: string,
    identity: CallerIdentity | undefined,
    deadlineMs?: number,
  ): Promise<CallerDecision> {
    if (this.#settings.mode === VendAuthorization.PerConnection) {
      const caller = await this.#verify(identity, deadlineMs);
      await this.#requireGrant(connectionId, caller);
      return { caller: caller.arn, outcome: "granted" };
    }
    if (!this.#verifier) return { outcome: "unchecked" };
    // stackWide: the same checks, for the operator's migration (README), but nothing is refused.
    // A vend without an identity is counted, not logged: every vend of a consumer not moved yet has none.
    if (identity === undefined) return { outcome: "wouldDeny" };
    let caller: VerifiedCaller | undefined;
    try {
      caller = await this.#verify(identity, deadlineMs);
      await this.#requireGrant(connectionId, caller);
      return { caller: caller.arn, outcome: "granted" };
    } catch (error) {
      if (!(error instanceof BrokerError)) throw error;
      const refused = error instanceof AccessDenied;
      this.#log.warn(
        refused ? "vend served under stackWide that perConnection would refuse" : "caller not verified",
        { connectionId, errorType: error.name, reason: error.message },
      );
      return { ...(caller ? { caller: caller.arn } : {}), outcome: refused ? "wouldDeny" : "unchecked" };
    }
  }

  async #verify(
    identity: CallerIdentity | undefined,
    deadlineMs: number | undefined,
  ): Promise<VerifiedCaller> {
    if (!this.#verifier)
      throw new ConfigurationError("token-vend has no BROKER_SERVER_ID to verify callers with");
    if (identity === undefined) {
      throw new AccessDenied(
        "token-vend serves a connection only to callers that prove their AWS identity (callerIdentity): " +
          "use exact-token-broker/client with TOKEN_VEND_SERVER_ID set to the stack's BrokerServerId output",
      );
    }
    return this.#verifier.verify(identity, deadlineMs);
  }

  async #requireGrant(connectionId: string, caller: VerifiedCaller): Promise<void> {
    const key = `${connectionId}\n${caller.principal}`;
    const nowMs = this.#now();
    const until = this.#granted.get(key);
    if (until !== undefined && nowMs < until) return;
    this.#granted.delete(key);
    if (!(await this.#grants.isGranted(connectionId, caller.principal))) {
      throw new AccessDenied(
        `${caller.arn} has no grant for connection "${connectionId}"; an operator grants it with: ` +
          `exact-broker grant --id ${connectionId} --principal ${caller.principal}`,
      );
    }
    if (this.#granted.size >= MAX_CACHED_GRANTS) {
      const oldest = this.#granted.keys().next().value;
      if (oldest !== undefined) this.#granted.delete(oldest);
    }
    this.#granted.set(key, nowMs + GRANT_CACHE_MS);
  }
}

/**
 * token-vend's authorizer from the environment (VEND_AUTHORIZATION, BROKER_SERVER_ID,
 * AWS_REGION) over the broker's table. `stsEndpoint` is for tests (moto_server); in AWS the
 * verifier builds the regional endpoint itself.
 */
export function createVendAuthorizer(
  env: Readonly<Record<string, string | undefined>>,
  deps: {
    readonly tableName: string;
    readonly dynamo: DynamoDBClient;
    readonly log: EngineLog;
    readonly now: () => number;
    readonly stsEndpoint?: string;
  },
): VendAuthorizer {
  const settings = loadAuthorizationSettings(env);
  const { serverId, region } = settings;
  return new VendAuthorizer({
    settings,
    grants: new GrantStore({ tableName: deps.tableName, client: deps.dynamo }),
    ...(serverId && region
      ? {
          verifier: new StsIdentityVerifier({
            serverId,
            region,
            now: deps.now,
            ...(deps.stsEndpoint ? { endpoint: deps.stsEndpoint } : {}),
          }),
        }
      : {}),
    log: deps.log,
    now: deps.now,
  });
}
