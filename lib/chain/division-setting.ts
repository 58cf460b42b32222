import {
  ChainBusy,
  ConnectionNotFound,
  ExactUnavailable,
  ReauthRequired,
  ValidationError,
} from "../errors.js";
import { EventReason } from "../events/broker-events.js";
import { type ChainRecord, ChainStatus, DivisionPinnedBy, servable } from "./chain-record.js";
import { checkPinnedDivision } from "./division-check.js";
import type { EngineDeps } from "./engine-deps.js";
import { withIncarnation } from "./incarnation.js";
import { CLOCK_SKEW_BOUND_MS } from "./timing.js";
import type { VendAnswer } from "./token-cache.js";

/** Exact's division numbers are Edm.Int32. */
export const MAX_DIVISION = 2 ** 31 - 1;

/** The least validity a stored access token needs to be used for the check (ms): the call, with room. */
const MIN_TOKEN_VALIDITY_MS = 1_000;
/** Exact's clock starts a token's life before our arrival time does: keep this much in hand (ms). */
const EXPIRY_MARGIN_MS = 200;
const RETRY_PAUSE_MS = 250;

export type SetDivisionResult =
  /** The division is pinned now (`checked`: with the chain's user; false before any chain). */
  | {
      readonly kind: "pinned";
      readonly division: number;
      readonly previous: number | null;
      readonly checked: boolean;
      readonly exactUserName: string | null;
      /** The connection had stopped at `division_unreachable`; its stored chain is checked again now. */
      readonly resumed: boolean;
    }
  /** The operator had pinned this division already. */
  | { readonly kind: "unchanged"; readonly division: number }
  /** Exact answered 403: the chain's user cannot open the division; nothing changed. */
  | {
      readonly kind: "unreachable";
      readonly division: number;
      readonly previous: number | null;
      readonly exactUserName: string | null;
    };

/** Gets an access token the way a consumer would (VendDoor.vend), for a chain whose stored one expired. */
export type VendFn = (connectionId: string, minValiditySeconds: number) => Promise<VendAnswer>;

/**
 * `exact-broker connection set-division`: pins another division on an existing connection. The
 * division is first checked with the connection's current chain (`system/Divisions` of that
 * division: 200 reaches it, 403 does not), then written without a lease, as it changes no
 * token (UnleasedWrites.pinDivision). A connection that never had a chain takes it unchecked:
 * its first identity check checks it.
 */
export class DivisionSetting {
  readonly #deps: EngineDeps;
  readonly #vend: VendFn;

  constructor(deps: EngineDeps, vend: VendFn) {
    this.#deps = deps;
    this.#vend = vend;
  }

  /**
   * @throws ValidationError (not a division number), ConnectionNotFound, ReauthRequired (no
   *   chain to check with), ChainBusy (an identity check is under way), ExactUnavailable (Exact
   *   did not tell), and whatever the vend throws when the stored token had expired
   */
  async set(connectionId: string, division: number): Promise<SetDivisionResult> {
    if (!Number.isInteger(division) || division < 1 || division > MAX_DIVISION) {
      throw new ValidationError(`a division is a whole number from 1 to ${MAX_DIVISION}, got ${division}`);
    }
    const { now, config, store, sleep } = this.#deps;
    let record = await this.#load(connectionId);
    const previous = record.division ?? null;
    const stopped = stoppedAtDivision(record);
    if (
      record.pinnedDivision === division &&
      record.divisionPinnedBy === DivisionPinnedBy.Operator &&
      !stopped
    ) {
      return { kind: "unchanged", division };
    }
    const checked = record.exactUserId !== undefined;
    if (checked) {
      const reach = await this.#check(record, division);
      if (reach === "unreachable") {
        return { kind: "unreachable", division, previous, exactUserName: record.exactUserName ?? null };
      }
    }
    const giveUpAtMs = now() + config.leaseMs + CLOCK_SKEW_BOUND_MS;
    for (;;) {
      if (await store.unleased.pinDivision(record, division)) {
        this.#deps.log.info("pinned division changed by an operator", { connectionId, division, previous });
        return {
          kind: "pinned",
          division,
          previous,
          checked,
          exactUserName: record.exactUserName ?? null,
          resumed: stoppedAtDivision(record) && record.verification !== undefined,
        };
      }
      const again = await this.#load(connectionId);
      if (again.incarnation !== record.incarnation) {
        throw new ConnectionNotFound(`connection "${connectionId}" was removed meanwhile`);
      }
      if (again.exactUserId !== record.exactUserId) {
        throw new ChainBusy(
          `connection "${connectionId}" got a chain of another Exact user meanwhile; run the command again`,
          { retryAfterSeconds: 5 },
        );
      }
      // An identity check under way (its lease) or a status that moved: wait for it, briefly.
      if (now() + RETRY_PAUSE_MS > giveUpAtMs) {
        throw new ChainBusy(
          `connection "${connectionId}" is busy (an identity check is under way); try again`,
          {
            retryAfterSeconds: 5,
          },
        );
      }
      await sleep(RETRY_PAUSE_MS);
      record = again;
    }
  }

  /** Whether the connection's current chain's user can open `division`. */
  async #check(record: ChainRecord, division: number): Promise<"reachable" | "unreachable"> {
    const { now, config } = this.#deps;
    const id = record.connectionId;
    if (record.status === ChainStatus.Verifying) {
      throw new ChainBusy(
        `connection "${id}": its chain's identity check is pending (it finishes automatically); try again after it`,
        { retryAfterSeconds: 5 },
      );
    }
    const token = await this.#accessToken(record);
    const timeoutMs = Math.min(config.httpTimeoutMs, token.expiresAtMs - EXPIRY_MARGIN_MS - now());
    const reach = await checkPinnedDivision(this.#deps, {
      baseUrl: record.baseUrl,
      accessToken: token.accessToken,
      division,
      timeoutMs,
    });
    if (reach === "rate_limited") {
      // An operator's pin is checked, not assumed (unlike a heal's, division-check.ts): wait.
      throw new ExactUnavailable(
        `Exact's API budget for division ${division} is spent (429, 60 calls a minute and 5,000 a day per app and division); nothing changed, try again after it resets`,
        { retryAfterSeconds: 60 },
      );
    }
    if (reach === "unknown") {
      throw new ExactUnavailable(
        `could not tell whether Exact user ${record.exactUserName ?? "?"} can open division ${division} (Exact failed or refused the check); nothing changed`,
        { retryAfterSeconds: 5 },
      );
    }
    return reach;
  }

  /** The current access token: the stored one while valid (whatever the status), else a vend's. */
  async #accessToken(record: ChainRecord): Promise<{ accessToken: string; expiresAtMs: number }> {
    const { cipher, now, config } = this.#deps;
    const id = record.connectionId;
    const expiresAtMs = record.accessExpiresAtMs ?? 0;
    if (record.accessCt && expiresAtMs - EXPIRY_MARGIN_MS - now() >= MIN_TOKEN_VALIDITY_MS) {
      const accessToken = await cipher.decrypt(record.accessCt, {
        connectionId: id,
        kind: "access",
        ...(record.incarnation !== undefined ? { incarnation: record.incarnation } : {}),
      });
      return { accessToken, expiresAtMs };
    }
    if (servable(record)) {
      const answer = await this.#vend(id, config.refreshWindowSeconds);
      return { accessToken: answer.accessToken, expiresAtMs: Date.parse(answer.expiresAt) };
    }
    throw new ReauthRequired(
      stoppedAtDivision(record)
        ? `connection "${id}": its stored access token expired, so the division cannot be checked; run exact-broker heal --id ${id} (a login: it stops again at division_unreachable while the user cannot open division ${record.division ?? "?"}), then this command within 10 minutes`
        : `connection "${id}" has no chain to check the division with (status ${record.status}); connect it first, or see: exact-broker status --id ${id}`,
    );
  }

  async #load(connectionId: string): Promise<ChainRecord> {
    const read = await this.#deps.store.get(connectionId);
    const record = read && (await withIncarnation(this.#deps, read));
    if (!record) throw new ConnectionNotFound(`connection "${connectionId}" does not exist`);
    return record;
  }
}

/** A connection whose heal stopped because its user can no longer open the pinned division. */
function stoppedAtDivision(record: ChainRecord): boolean {
  return (
    record.status === ChainStatus.ReauthRequired && record.statusReason === EventReason.DivisionUnreachable
  );
}
