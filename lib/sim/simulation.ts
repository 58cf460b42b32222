import { createHash } from "node:crypto";
import { ValidationError } from "../errors.js";
import { ApiRateLimiter } from "./api-rate-limit.js";
import { SimClock } from "./clock.js";
import {
  parseAppSpec,
  parseAuthorizeRequest,
  parseRefreshTokenAgeSpec,
  parseUserDivisionsSpec,
  parseUserSpec,
} from "./config.js";
import { ErrorLimiter } from "./error-limit.js";
import { FaultRegistry, type FaultView, parseFaultSpec } from "./faults.js";
import { LoginState } from "./login-state.js";
import { parseScriptSpec, ScriptRegistry, type ScriptView } from "./scripts.js";
import type { SimulatorSettings } from "./settings.js";
import { type PublicUser, publicUser, SimState, type User } from "./state.js";
import { type SimulatorStats, StatsRecorder } from "./stats.js";
import { DailyTokenCalls } from "./token-cap.js";
import { asObject, checkNumber, rejectUnknownKeys } from "./validate.js";
import { parseVariants, type Variants } from "./variants.js";

const DAY_MS = 24 * 60 * 60 * 1000;

/** What the simulation needs from the server around it. */
export interface SimulationHooks {
  /** Stop accepting connections for `durationMs`, then listen again on the same port. */
  refuse(durationMs: number): void;
}

/** Everything `reset()` throws away. */
interface World {
  state: SimState;
  stats: StatsRecorder;
  errorLimiter: ErrorLimiter;
  faults: FaultRegistry;
  scripts: ScriptRegistry;
  variants: Variants;
  login: LoginState;
  apiRateLimiter: ApiRateLimiter;
  dailyTokenCalls: DailyTokenCalls;
}

/**
 * The simulated Exact instance behind the HTTP layer: state, clock, variants, faults, scripted
 * answers, the error limit, the API rate limits, the daily token-call counts, stats and the
 * interactive login's sessions. The control API and the programmatic `Simulator` both drive it through the
 * same methods, which take unchecked input and validate it (throwing `ValidationError`).
 */
export class Simulation {
  readonly clock: SimClock;
  private world: World;
  private nextFaultNumber = 1;
  private nextScriptNumber = 1;

  constructor(
    readonly settings: SimulatorSettings,
    private readonly hooks: SimulationHooks,
  ) {
    this.clock = new SimClock(settings.now);
    this.world = this.freshWorld();
  }

  get state(): SimState {
    return this.world.state;
  }

  get stats(): StatsRecorder {
    return this.world.stats;
  }

  get errorLimiter(): ErrorLimiter {
    return this.world.errorLimiter;
  }

  get faults(): FaultRegistry {
    return this.world.faults;
  }

  get scripts(): ScriptRegistry {
    return this.world.scripts;
  }

  get apiRateLimiter(): ApiRateLimiter {
    return this.world.apiRateLimiter;
  }

  get dailyTokenCalls(): DailyTokenCalls {
    return this.world.dailyTokenCalls;
  }

  get variants(): Readonly<Variants> {
    return this.world.variants;
  }

  get login(): LoginState {
    return this.world.login;
  }

  addApp(input: unknown): { clientId: string; redirectUris: string[] } {
    const app = this.state.addApp(parseAppSpec(input));
    return { clientId: app.clientId, redirectUris: [...app.redirectUris] };
  }

  addUser(input: unknown): PublicUser {
    return publicUser(this.state.addUser(parseUserSpec(input)));
  }

  /** Moves the user's `CurrentDivision` or changes what it can open (`POST /_sim/users/{username}/divisions`). */
  setUserDivisions(username: string, input: unknown): PublicUser {
    return publicUser(this.state.setUserDivisions(username, parseUserDivisionsSpec(input)));
  }

  authorize(input: unknown): string {
    return this.state.issueCode(parseAuthorizeRequest(input), this.clock.nowMs());
  }

  /**
   * Ages the live refresh token of (client ID, user) (`POST /_sim/refresh-token-age`), as if Exact
   * had issued it `ageSeconds` ago: it expires 30 days (`refreshTtlDays`) after that.
   * @returns when it expires now (epoch ms)
   */
  setRefreshTokenAge(input: unknown): number {
    const spec = parseRefreshTokenAgeSpec(input);
    if (this.state.app(spec.clientId) === undefined) {
      throw new ValidationError(`refresh token age: unknown clientId "${spec.clientId}"`);
    }
    const user = this.state.user(spec.username);
    if (user === undefined) {
      throw new ValidationError(`refresh token age: unknown username "${spec.username}"`);
    }
    return this.state.setRefreshTokenAge(
      this.state.pair(spec.clientId, user),
      spec.ageSeconds * 1000,
      this.clock.nowMs(),
    );
  }

  /** Moves sim time forward; returns the new sim time in epoch ms. */
  advanceClock(seconds: unknown): number {
    return this.clock.advance(checkNumber(seconds, { min: 0, max: 10 * 365 * 24 * 3600 }, "advanceSeconds"));
  }

  /** Advances the clock as `POST /_sim/clock` asks (`{"advanceSeconds":N}`). */
  advanceClockBy(input: unknown): number {
    const body = asObject(input, "clock");
    rejectUnknownKeys(body, ["advanceSeconds"], "clock");
    return this.advanceClock(body.advanceSeconds);
  }

  setVariants(input: unknown): Variants {
    this.world.variants = { ...this.world.variants, ...parseVariants(input) };
    return { ...this.world.variants };
  }

  /** Registers a fault, or starts a refusal period at once; returns the fault's id. */
  addFault(input: unknown): string {
    const fault = parseFaultSpec(input);
    const id = `f${this.nextFaultNumber++}`;
    if ("durationMs" in fault) {
      this.hooks.refuse(fault.durationMs);
    } else if ("page" in fault) {
      this.faults.addPageBreak(id, fault);
    } else {
      this.faults.add(id, fault.trigger, fault.effect);
    }
    return id;
  }

  listFaults(): FaultView[] {
    return this.faults.list();
  }

  clearFaults(): number {
    return this.faults.clear();
  }

  /** Registers a scripted answer; returns its id. Its client must be a registered app. */
  addScript(input: unknown): string {
    const script = parseScriptSpec(input);
    if (this.state.app(script.clientId) === undefined) {
      throw new ValidationError(`script: unknown clientId "${script.clientId}"`);
    }
    const id = `s${this.nextScriptNumber++}`;
    this.scripts.add(id, script);
    return id;
  }

  listScripts(): ScriptView[] {
    return this.scripts.list();
  }

  clearScripts(): number {
    return this.scripts.clear();
  }

  /**
   * The stats key for a request, or undefined when its app is not registered or its user is
   * unknown (such requests count in the totals only).
   */
  pairKeyFor(clientId: string | undefined, user: User | undefined): string | undefined {
    if (clientId === undefined || user === undefined || this.state.app(clientId) === undefined) {
      return undefined;
    }
    return this.state.pair(clientId, user).key;
  }

  statsView(): SimulatorStats {
    const pairs = [...this.state.allPairs()].map((pair) => ({
      key: pair.key,
      generation: pair.chain?.generation ?? 0,
      liveRefreshHash: pair.chain
        ? createHash("sha256").update(pair.chain.refreshToken).digest("hex").slice(0, 16)
        : null,
      chainsStarted: pair.chainsStarted,
    }));
    return this.stats.view(pairs);
  }

  /** Back to the state right after start: config apps and users, start variants, clock offset 0. */
  reset(): void {
    this.clock.reset();
    this.world = this.freshWorld();
  }

  private freshWorld(): World {
    const { settings } = this;
    const state = new SimState(
      {
        accessTtlMs: settings.accessTtlSeconds * 1000,
        refreshTtlMs: settings.refreshTtlDays * DAY_MS,
      },
      settings.tokenStyle,
    );
    for (const app of settings.config.apps ?? []) state.addApp(app);
    for (const user of settings.config.users ?? []) state.addUser(user);
    return {
      state,
      stats: new StatsRecorder(),
      errorLimiter: new ErrorLimiter(),
      faults: new FaultRegistry(),
      scripts: new ScriptRegistry(),
      variants: { ...settings.variants },
      login: new LoginState(),
      apiRateLimiter: new ApiRateLimiter({
        callsPerMinute: settings.apiCallsPerMinute,
        callsPerDay: settings.apiCallsPerDay,
      }),
      dailyTokenCalls: new DailyTokenCalls(),
    };
  }
}
