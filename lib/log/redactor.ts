/**
 * Scrubs secrets out of anything that is about to leave the process as text (design invariant 8).
 *
 * Three nets, because no single one catches everything:
 * - key names: a value stored under `refresh_token`, `password`, … is dropped whatever it looks like;
 * - registered values: every secret the broker handles (client secrets, passwords, TOTP secrets,
 *   tokens that pass through the cipher) is registered once and scrubbed wherever it appears,
 *   also inside messages, stacks and URLs;
 * - shape: Exact's tokens and codes are long runs that contain `!` (or `%21` once URL-encoded),
 *   so one we never registered (straight from a token response) is still caught.
 */

/** What every scrubbed value is replaced with. */
export const REDACTED = "[REDACTED]";

/** Shorter values would scrub ordinary words and numbers out of every line. */
export const MIN_SECRET_LENGTH = 8;

/**
 * A warm container sees a new access token per chain every ~10 minutes; the oldest are long dead
 * by the time this many newer ones arrived, and a bound keeps the per-line scan cost flat.
 */
const MAX_REGISTERED_SECRETS = 1_000;

/** Beyond this depth a log attribute is cut off: no useful log line nests deeper, and it bounds recursion. */
const MAX_DEPTH = 32;

const SENSITIVE_KEY =
  /^(access_?token|refresh_?token|client_?secret|password|totp_?secret|code|authorization|cookie|set-cookie|id_token|token)$/i;

/**
 * Node, undici and AbortError codes (`ECONNRESET`, `ERR_TLS_…`, `UND_ERR_SOCKET`, `ABORT_ERR`) on an
 * Error tell "not sent" from "outcome unknown" (invariant 5), so they stay readable. An OAuth
 * code never has this shape: Exact's are mixed case and contain `!`.
 */
const SYSTEM_ERROR_CODE = /^(?:E[A-Z0-9_]{2,40}|ERR_[A-Z0-9_]{1,60}|UND_ERR_[A-Z0-9_]{1,40}|ABORT_ERR)$/;

/** Exact token alphabet plus `%`, so a URL-encoded token (`!` → `%21`) is one run as well. */
const TOKEN_RUN = /[A-Za-z0-9!_\-.~+/=%]{40,}/g;
const TOKEN_RUN_MIN_LENGTH = 40;

const registry = new Set<string>();
/** Longest first, so a secret that contains another is removed whole; rebuilt lazily. */
let sortedSecrets: string[] = [];
let sortedIsStale = false;

/**
 * Remembers a secret value so that {@link redact} scrubs it from every string from now on.
 * Values shorter than {@link MIN_SECRET_LENGTH} are ignored. The URL-encoded form is registered
 * too, since tokens travel in form bodies and query strings.
 */
export function registerSecret(value: string): void {
  if (typeof value !== "string" || value.length < MIN_SECRET_LENGTH) return;
  addToRegistry(value);
  const encoded = encodeURIComponent(value);
  if (encoded !== value) addToRegistry(encoded);
}

function addToRegistry(value: string): void {
  // Re-inserting moves the value to the young end, so secrets still in use are evicted last.
  // It leaves the set's contents unchanged: every vend re-registers its token, and must not
  // make the next log line re-sort the registry.
  if (registry.delete(value)) {
    registry.add(value);
    return;
  }
  registry.add(value);
  if (registry.size > MAX_REGISTERED_SECRETS) {
    const oldest = registry.values().next().value;
    if (oldest !== undefined) registry.delete(oldest);
  }
  sortedIsStale = true;
}

function secretsLongestFirst(): string[] {
  if (sortedIsStale) {
    sortedSecrets = [...registry].sort((a, b) => b.length - a.length);
    sortedIsStale = false;
  }
  return sortedSecrets;
}

/** Scrubs registered secrets and token-shaped runs out of one string. */
export function redactString(text: string): string {
  let out = text;
  if (out.length >= MIN_SECRET_LENGTH && registry.size > 0) {
    for (const secret of secretsLongestFirst()) {
      if (secret.length <= out.length && out.includes(secret)) out = out.replaceAll(secret, REDACTED);
    }
  }
  // Both guards are cheap and rule out the regex for nearly every ordinary line.
  if (out.length >= TOKEN_RUN_MIN_LENGTH && (out.includes("!") || out.includes("%21"))) {
    out = out.replace(TOKEN_RUN, (run) => (run.includes("!") || run.includes("%21") ? REDACTED : run));
  }
  return out;
}

/**
 * Returns a deep copy of `value` with secrets replaced by {@link REDACTED}; the input is not touched.
 *
 * Plain objects and arrays are copied; Errors become Errors with the same name, redacted
 * message and stack, redacted own fields and a redacted `cause` chain; objects with `toJSON`
 * (Date, URL) are replaced by their JSON form, other class instances by their own enumerable
 * fields (which is what JSON.stringify would print anyway). Binary data becomes a size note,
 * because bytes cannot be scanned. Cycles become `"[Circular]"`; this never throws.
 */
export function redact(value: unknown): unknown {
  return redactValue(value, new Set(), 0);
}

function redactValue(value: unknown, ancestors: Set<object>, depth: number): unknown {
  if (typeof value === "string") return redactString(value);
  if (typeof value !== "object" || value === null) return value;
  if (ancestors.has(value)) return "[Circular]";
  if (depth >= MAX_DEPTH) return "[Truncated]";
  ancestors.add(value);
  try {
    return redactObject(value, ancestors, depth + 1);
  } catch {
    // A throwing getter or toJSON must not take the log line (or the caller) down with it.
    return "[Unserializable]";
  } finally {
    ancestors.delete(value);
  }
}

function redactObject(value: object, ancestors: Set<object>, depth: number): unknown {
  if (Array.isArray(value)) return value.map((item) => redactValue(item, ancestors, depth));
  if (value instanceof Error) return redactError(value, ancestors, depth);
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    return `[binary ${value.byteLength} bytes]`;
  }
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return redactValue(toJSON.call(value), ancestors, depth);
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    copy[redactKey(key)] = redactEntry(key, (value as Record<string, unknown>)[key], ancestors, depth);
  }
  return copy;
}

function redactEntry(key: string, value: unknown, ancestors: Set<object>, depth: number): unknown {
  if (SENSITIVE_KEY.test(key) && value !== undefined && value !== null) return REDACTED;
  return redactValue(value, ancestors, depth);
}

function redactKey(key: string): string {
  // Keys are almost always short identifiers; only long ones can hold a token (a cache dump).
  return key.length >= MIN_SECRET_LENGTH ? redactString(key) : key;
}

function redactError(error: Error, ancestors: Set<object>, depth: number): Error {
  const copy = new Error(redactString(String(error.message)));
  // Non-enumerable like the originals, so the copy prints the way the error would have.
  Object.defineProperty(copy, "name", {
    value: redactString(String(error.name)),
    writable: true,
    configurable: true,
    enumerable: false,
  });
  Object.defineProperty(copy, "stack", {
    value: typeof error.stack === "string" ? redactString(error.stack) : undefined,
    writable: true,
    configurable: true,
    enumerable: false,
  });
  if ("cause" in error) {
    Object.defineProperty(copy, "cause", {
      value: redactValue(error.cause, ancestors, depth),
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
  const fields = copy as unknown as Record<string, unknown>;
  const source = error as unknown as Record<string, unknown>;
  for (const key of Object.keys(error)) {
    // BrokerError sets `name` as an own field; it was copied above.
    if (key === "name" || key === "message" || key === "stack" || key === "cause") continue;
    const field = source[key];
    fields[redactKey(key)] =
      key === "code" && typeof field === "string" && SYSTEM_ERROR_CODE.test(field)
        ? field
        : redactEntry(key, field, ancestors, depth);
  }
  return copy;
}
