import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { connectionKey } from "./table-definition.js";

/** Where a chain stands. */
export const ChainStatus = {
  /** Added by an operator, never connected to Exact. */
  New: "NEW",
  Active: "ACTIVE",
  /** A token call's outcome is unknown: Exact may have rotated the chain. One probe decides. */
  Suspect: "SUSPECT",
  /** Exact no longer accepts the chain; a login must start a new one. */
  Broken: "BROKEN",
  Healing: "HEALING",
  /** Nothing automatic can help; an operator must act (see statusReason). */
  ReauthRequired: "REAUTH_REQUIRED",
} as const;
export type ChainStatus = (typeof ChainStatus)[keyof typeof ChainStatus];

export const ConnectionMode = { Code: "code", Implicit: "implicit" } as const;
export type ConnectionMode = (typeof ConnectionMode)[keyof typeof ConnectionMode];

/** What a lease holder is doing; written with the lease as the write-ahead note. */
export const LeasePurpose = { Refresh: "refresh", Probe: "probe", Heal: "heal", Login: "login" } as const;
export type LeasePurpose = (typeof LeasePurpose)[keyof typeof LeasePurpose];

/** Configuration an operator gives when adding a connection. */
export interface ConnectionConfig {
  readonly connectionId: string;
  readonly clientId: string;
  readonly baseUrl: string;
  readonly redirectUri: string;
  readonly secretId: string;
  readonly mode: ConnectionMode;
}

/**
 * Write-ahead note: set by the same write that takes the lease, cleared by the write that ends
 * it. A note whose lease has expired means its holder died mid-protocol, perhaps after Exact
 * rotated the chain, so the next holder must treat the chain as suspect.
 */
export interface InflightNote {
  readonly owner: string;
  readonly generation: number;
  readonly purpose: LeasePurpose;
  readonly startedAtMs: number;
}

/** When the chain's recent token-endpoint errors happened (epoch ms), newest last. */
export interface ErrorBudget {
  readonly errorAtMs: readonly number[];
}

/** One connection's item, typed. Attribute names are the DynamoDB attribute names. */
export interface ChainRecord extends ConnectionConfig {
  readonly createdAtMs: number;
  readonly status: ChainStatus;
  readonly statusReason?: string;
  readonly statusChangedAtMs?: number;
  /** +1 on every new token pair; 0 until the first one. */
  readonly generation: number;
  readonly exactUserId?: string;
  readonly exactUserName?: string;
  readonly division?: number | null;

  readonly accessCt?: string;
  readonly accessIssuedAtMs?: number;
  readonly accessExpiresAtMs?: number;
  readonly refreshCt?: string;
  readonly refreshIssuedAtMs?: number;
  readonly refreshHash?: string;
  /** First moment Exact will accept a refresh of this generation (arrival + life − window + margin). */
  readonly windowOpensAtMs?: number;

  readonly leaseOwner?: string;
  readonly leaseFence: number;
  readonly leaseUntilMs?: number;
  readonly leasePurpose?: LeasePurpose;
  readonly inflight?: InflightNote;

  readonly lastVendAtMs?: number;
  /** The generation in which lastVendAtMs was last written: one hotness write per generation. */
  readonly hotGeneration?: number;
  readonly dueShard?: string;
  readonly dueAtMs?: number;

  readonly tokenErrors?: ErrorBudget;
  /** Failed logins in the last hour (at most 3 are risked: Exact locks accounts). */
  readonly loginFailures?: ErrorBudget;
  readonly lastLoginFailure?: string;
  /** The TOTP step (epoch s / 30) the last login used; the next login waits for a later one. */
  readonly lastTotpStep?: number;
  readonly backoffUntilMs?: number;
  /** Which error a vend reports while the chain backs off. */
  readonly backoffReason?: "throttled" | "unavailable";
  readonly failureStreak?: number;
}

export function toRecord(item: Record<string, AttributeValue>): ChainRecord {
  const raw = unmarshall(item) as ChainRecord & { pk: string };
  const { pk: _pk, ...record } = raw;
  return { ...record, leaseFence: record.leaseFence ?? 0 };
}

export function newConnectionItem(config: ConnectionConfig, nowMs: number): Record<string, AttributeValue> {
  const record: ChainRecord = {
    ...config,
    createdAtMs: nowMs,
    status: ChainStatus.New,
    statusChangedAtMs: nowMs,
    generation: 0,
    leaseFence: 0,
  };
  return marshall({ pk: connectionKey(config.connectionId), ...record }, { removeUndefinedValues: true });
}

/** The lease is live when someone holds it and its deadline has not passed. */
export function leaseIsLive(record: ChainRecord, nowMs: number): boolean {
  return record.leaseOwner !== undefined && (record.leaseUntilMs ?? 0) > nowMs;
}

/** Milliseconds of validity the current access token still has (0 if none). */
export function accessValidityMs(record: ChainRecord, nowMs: number): number {
  return record.accessCt && record.accessExpiresAtMs ? Math.max(0, record.accessExpiresAtMs - nowMs) : 0;
}
