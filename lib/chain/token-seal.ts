import { createHash } from "node:crypto";
import type { BrokerConfig } from "../config.js";
import type { PreparedSealer, TokenCipher } from "../crypto/token-cipher.js";
import { type ChainRecord, ConnectionMode } from "./chain-record.js";
import { hotAt, keepaliveDueAtMs, windowOpensAtMs } from "./timing.js";

/** Tokens Exact handed out, in plaintext, as the OAuth client and the login driver return them. */
export interface IssuedPair {
  readonly accessToken?: string;
  /** Seconds; absent on a rotation-only answer. */
  readonly expiresInSeconds?: number;
  /** Absent for an implicit-mode login, which never gets one. */
  readonly refreshToken?: string;
}

/** What one persisting write stores: ciphertexts, the refresh token's hash and the timing they imply. */
export interface SealedTokens {
  readonly refresh?: {
    readonly refreshCt: string;
    readonly refreshHash: string;
    readonly refreshIssuedAtMs: number;
  };
  readonly access?: {
    readonly accessCt: string;
    readonly accessIssuedAtMs: number;
    readonly accessExpiresAtMs: number;
    readonly windowOpensAtMs: number;
  };
}

type Timing = Pick<BrokerConfig, "refreshWindowSeconds" | "refreshMarginMs" | "keepaliveDays">;

/** First 16 hex digits of SHA-256: enough to tell chains apart in audits, useless to an attacker. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex").slice(0, 16);
}

/**
 * Fetches the chain's key material before a token call or login (KMS in AWS), so that sealing
 * Exact's answer is pure computation: nothing that can fail sits between Exact's answer and the
 * write that persists it (design invariant 4). Throws what the cipher throws; nothing was sent.
 */
export function prepareSealer(
  cipher: TokenCipher,
  record: Pick<ChainRecord, "connectionId" | "incarnation">,
): Promise<PreparedSealer> {
  return cipher.prepare({
    connectionId: record.connectionId,
    ...(record.incarnation !== undefined ? { incarnation: record.incarnation } : {}),
  });
}

/**
 * Encrypts what Exact issued with prepared key material (no network call) and derives its
 * timing. `arrivalMs` is when the answer arrived: the window counts from then, so clock skew and
 * latency can only make a refresh late, never too early. An implicit-mode access token has no
 * refresh window: its "window" is when the refresher logs in again, two windows before expiry.
 */
export async function sealTokens(
  sealer: PreparedSealer,
  issued: IssuedPair,
  arrivalMs: number,
  mode: ConnectionMode,
  config: Timing,
): Promise<SealedTokens> {
  const { accessToken, expiresInSeconds, refreshToken } = issued;
  const refresh = refreshToken
    ? {
        refreshCt: await sealer.seal(refreshToken, "refresh"),
        refreshHash: hashToken(refreshToken),
        refreshIssuedAtMs: arrivalMs,
      }
    : undefined;
  const access =
    accessToken && expiresInSeconds
      ? {
          accessCt: await sealer.seal(accessToken, "access"),
          accessIssuedAtMs: arrivalMs,
          accessExpiresAtMs: arrivalMs + expiresInSeconds * 1000,
          windowOpensAtMs:
            mode === ConnectionMode.Implicit
              ? arrivalMs + (expiresInSeconds - 2 * config.refreshWindowSeconds) * 1000
              : windowOpensAtMs(arrivalMs, expiresInSeconds, config),
        }
      : undefined;
  return { ...(refresh ? { refresh } : {}), ...(access ? { access } : {}) };
}

/**
 * Where a chain sits in the refresher's sparse index once it holds `sealed`: a hot chain (vended
 * within HOT_LIFETIMES token lifetimes, timing.ts) at its window, so vends never wait; an idle one at its keep-alive
 * date, so its refresh token never reaches Exact's 30 days.
 */
export function dueAtAfter(
  record: Pick<
    ChainRecord,
    | "lastVendAtMs"
    | "windowOpensAtMs"
    | "accessIssuedAtMs"
    | "accessExpiresAtMs"
    | "refreshIssuedAtMs"
    | "createdAtMs"
  >,
  sealed: SealedTokens,
  nowMs: number,
  vended: boolean,
  config: Timing,
): number {
  const access = sealed.access;
  const windowAtMs = access?.windowOpensAtMs ?? record.windowOpensAtMs;
  const lifetimeMs = access
    ? access.accessExpiresAtMs - access.accessIssuedAtMs
    : (record.accessExpiresAtMs ?? 0) - (record.accessIssuedAtMs ?? 0);
  const lastVendAtMs = vended ? nowMs : record.lastVendAtMs;
  const hot = windowAtMs !== undefined && hotAt(lastVendAtMs, nowMs, lifetimeMs);
  const refreshIssuedAtMs =
    sealed.refresh?.refreshIssuedAtMs ?? record.refreshIssuedAtMs ?? record.createdAtMs;
  return hot ? windowAtMs : keepaliveDueAtMs(refreshIssuedAtMs, config.keepaliveDays);
}
