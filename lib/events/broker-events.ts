/** The `source` of every event the broker sends to EventBridge. */
export const EVENT_SOURCE = "exact-token-broker";

/** Event types (EventBridge `detail-type`). */
export const BrokerEventType = {
  /** Exact stopped accepting a chain; a login will try to heal it. */
  ChainBroken: "ChainBroken",
  /** A login started a new chain for a broken connection. */
  ChainHealed: "ChainHealed",
  /** Nothing automatic can help; an operator must act (see reason). */
  ReauthRequired: "ReauthRequired",
  /** A refresh token is older than 27 days: the keep-alive is failing and Exact expires it at 30. */
  RefreshTokenExpiring: "RefreshTokenExpiring",
  /** Exact rejects a whole app (its client secret, its scopes): once per app, named by the connection that found it. */
  AppRejected: "AppRejected",
  /** Exact refuses the chain's user (blocked, inactive, licence expired, no division access): no login can help. */
  UserBlocked: "UserBlocked",
  /** An (app, user) made 180 token calls today: 200 is Exact's announced daily cap. */
  TokenCallsHigh: "TokenCallsHigh",
} as const;
export type BrokerEventType = (typeof BrokerEventType)[keyof typeof BrokerEventType];

/**
 * Why. A fixed set, so alarms and runbooks can match on it:
 * - `old_token`: Exact answered "old refresh token" (someone else refreshed the chain)
 * - `refresh_expired`: the refresh token passed Exact's 30 days
 * - `invalid_chain`: Exact answered invalid_grant (chain superseded or invalid)
 * - `lost_answer`: a token call's answer was lost and the probe found the chain rotated
 * - `decrypt_failed`: the stored refresh token does not decrypt
 * - `invalid_client`: Exact rejected the client ID or secret
 * - `bad_credentials`: the login was refused: wrong user name or password
 * - `bad_totp`: the TOTP code was refused repeatedly (wrong TOTP secret or clock)
 * - `locked`: Exact locked the account after failed logins
 * - `login_failed`: the login pages could not be driven, or Exact failed during the login
 * - `no_login_credentials`: the secret holds no user name, password and TOTP secret
 * - `wrong_user`: the login belongs to another Exact user than the chain's
 * - `duplicate_user`: another connection already holds this Exact user
 * - `division_unreachable`: the chain's Exact user can no longer open the connection's pinned division
 * - `operator`: an operator asked for a heal
 * - `healed`: ChainHealed's reason
 * - `keepalive_failing`: RefreshTokenExpiring's reason
 * - `scope_violated`: Exact answers "Application Scope Violated" for the app (AppRejected)
 * - `blocked_user`, `inactive_user`, `license_expired`, `no_division_access`: Exact's `Reason`
 *   for refusing the user (UserBlocked)
 * - `daily_cap`: TokenCallsHigh's reason
 */
export const EventReason = {
  OldToken: "old_token",
  RefreshExpired: "refresh_expired",
  InvalidChain: "invalid_chain",
  LostAnswer: "lost_answer",
  DecryptFailed: "decrypt_failed",
  InvalidClient: "invalid_client",
  BadCredentials: "bad_credentials",
  BadTotp: "bad_totp",
  Locked: "locked",
  LoginFailed: "login_failed",
  NoLoginCredentials: "no_login_credentials",
  WrongUser: "wrong_user",
  DuplicateUser: "duplicate_user",
  DivisionUnreachable: "division_unreachable",
  Operator: "operator",
  Healed: "healed",
  KeepaliveFailing: "keepalive_failing",
  ScopeViolated: "scope_violated",
  BlockedUser: "blocked_user",
  InactiveUser: "inactive_user",
  LicenseExpired: "license_expired",
  NoDivisionAccess: "no_division_access",
  DailyCap: "daily_cap",
} as const;
export type EventReason = (typeof EventReason)[keyof typeof EventReason];

/** An event's detail: identifiers and a reason only, never a token or secret. */
export interface BrokerEventDetail {
  readonly connectionId: string;
  readonly generation: number;
  readonly reason: EventReason;
  /** ISO 8601. */
  readonly at: string;
}

export interface BrokerEvent {
  readonly type: BrokerEventType;
  readonly detail: BrokerEventDetail;
}

/** Where events go: EventBridge in AWS, the log locally. Publishing never throws. */
export interface EventPublisher {
  publish(event: BrokerEvent): Promise<void>;
}
