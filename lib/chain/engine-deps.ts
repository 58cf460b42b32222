import type { BrokerConfig } from "../config.js";
import type { TokenCipher } from "../crypto/token-cipher.js";
import type { BrokerEventType, EventPublisher, EventReason } from "../events/broker-events.js";
import type { LoginDriver } from "../exact/login/login-driver.js";
import type { ExactOAuthClient } from "../exact/oauth-client.js";
import type { SecretSource } from "../secrets/secret-source.js";
import type { AppStates } from "./app-states.js";
import type { ChainStore } from "./chain-store.js";
import type { TotpStepClaims } from "./totp-step-claims.js";

/** The engine's structured log: a Powertools Logger satisfies it; tests may capture it. */
export interface EngineLog {
  info(message: string, ...extra: Array<Record<string, unknown>>): void;
  warn(message: string, ...extra: Array<Record<string, unknown>>): void;
  error(message: string, ...extra: Array<Record<string, unknown>>): void;
}

/** Starts a heal without waiting for it: a Lambda invoke in AWS, a background promise locally. */
export interface HealTrigger {
  trigger(connectionId: string): void;
  /**
   * Resolves once every heal triggered so far has left this process (Lambda accepted the invoke,
   * or it failed and was logged), or after `timeoutMs`, whichever comes first; never rejects.
   * A Lambda handler awaits it before it answers (lib/handlers/heal-handoff.ts): the runtime
   * freezes a container once its handler has returned, and an invoke still in flight may then
   * never be sent (AWS Lambda docs, "Lambda execution environment lifecycle").
   * @param timeoutMs the longest wait, in ms; undefined: until the invokes end (each is bounded
   *   by its own HTTP timeout and attempts)
   */
  handedOff(timeoutMs?: number): Promise<void>;
}

/** Everything the doors need, injected so tests run real code against dynalite and the simulator. */
export interface EngineDeps {
  readonly config: BrokerConfig;
  readonly store: ChainStore;
  /** Per (app, Exact instance): outage pacing and app-level failures. */
  readonly apps: AppStates;
  readonly cipher: TokenCipher;
  readonly secrets: SecretSource;
  readonly oauth: ExactOAuthClient;
  readonly log: EngineLog;
  readonly events: EventPublisher;
  /**
   * Only where logins run: fallback-login, the CLI and local runs. token-vend and refresh have
   * none (their bundles stay free of the login driver) and trigger fallback-login instead.
   */
  readonly login?: LoginDriver;
  /** Where logins run: TOTP steps claimed per Exact user before a code is sent (totp-step-claims.ts). */
  readonly totpClaims?: TotpStepClaims;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly random: () => number;
  /** Identifies this container in lease owners and notes. */
  readonly owner: string;
}

/**
 * Publishes a broker event after the write it reports. Events come after the state they describe
 * is durable and may fail without undoing it (design invariant 13): a failure is logged, not thrown.
 */
export async function announce(
  deps: Pick<EngineDeps, "events" | "log" | "now">,
  type: BrokerEventType,
  chain: { readonly connectionId: string; readonly generation: number },
  reason: EventReason,
): Promise<void> {
  const detail = {
    connectionId: chain.connectionId,
    generation: chain.generation,
    reason,
    at: new Date(deps.now()).toISOString(),
  };
  try {
    await deps.events.publish({ type, detail });
  } catch (error) {
    deps.log.error("could not publish an event; the chain's state is stored", {
      connectionId: chain.connectionId,
      eventType: type,
      error: error as Error,
    });
  }
}
