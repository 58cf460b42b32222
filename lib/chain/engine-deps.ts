import type { BrokerConfig } from "../config.js";
import type { TokenCipher } from "../crypto/token-cipher.js";
import type { EventPublisher } from "../events/broker-events.js";
import type { LoginDriver } from "../exact/login/login-driver.js";
import type { ExactOAuthClient } from "../exact/oauth-client.js";
import type { SecretSource } from "../secrets/secret-source.js";
import type { ChainStore } from "./chain-store.js";

/** The engine's structured log: a Powertools Logger satisfies it; tests may capture it. */
export interface EngineLog {
  info(message: string, ...extra: Array<Record<string, unknown>>): void;
  warn(message: string, ...extra: Array<Record<string, unknown>>): void;
  error(message: string, ...extra: Array<Record<string, unknown>>): void;
}

/** Starts a heal without waiting for it: a Lambda invoke in AWS, a background promise locally. */
export interface HealTrigger {
  trigger(connectionId: string): void;
}

/** Everything the doors need, injected so tests run real code against dynalite and the simulator. */
export interface EngineDeps {
  readonly config: BrokerConfig;
  readonly store: ChainStore;
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
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly random: () => number;
  /** Identifies this container in lease owners and notes. */
  readonly owner: string;
}
